# frozen_string_literal: true

# The emit loops that bench/profile/emit_loop.rb and
# bench/experiments/emit_cuts.rb run: each variant is a loop body run `n`
# times in a `while` loop of its own (no block call per iteration).
# Constants are bound by `EmitLoops.prepare`.
require_relative "support"

module EmitLoops
  include BenchSupport

  BODIES = {
    "empty" => "nil",
    "msgsnd_only" => "ShopifyEvents::Experiments.msgsnd_only(QID, FRAME)",
    "native" => "NATIVE.emit(TOPIC, STRING, nil, nil)",
    "transport" => "TRANSPORT.emit(TOPIC, STRING, nil, nil)",
    "emit" => "ShopifyEvents.emit(TOPIC, STRING)",
    "emit_key" => "ShopifyEvents.emit(TOPIC, STRING, key: \"shop-1\")",
    "native_hash" => "NATIVE.emit(TOPIC, HASH, nil, nil)",
    "emit_hash" => "ShopifyEvents.emit(TOPIC, HASH)",
    "encode" => "ShopifyEvents::Native.encode(TOPIC, STRING, nil, nil)",
    "encode_hash" => "ShopifyEvents::Native.encode(TOPIC, HASH, nil, nil)"
  }.freeze
  # Loops over the prototypes, added by bench/experiments/loops.rb.
  EXTRA = {} # rubocop:disable Style/MutableConstant
  # The bare msgsnd floor runs its own loop in Rust.
  FLOOR = "floor"

  module_function

  # Sets a constant the loop bodies read (again for a new queue).
  def bind(name, value)
    send(:remove_const, name) if const_defined?(name, false)
    const_set(name, value)
  end

  def all
    BODIES.merge(EXTRA)
  end

  def names
    [FLOOR, *all.keys]
  end

  # Binds the constants the loop bodies use, for the queue at `key` (which
  # ShopifyEvents is configured to send to), and returns a callable per
  # variant that runs `n` calls.
  def prepare(key, variants)
    bind_constants(key)
    variants.to_h do |variant|
      next [variant, ->(n) { ShopifyEvents::Native::Bench.msgsnd_floor(key, ENVELOPE, n) }] if variant == FLOOR

      [variant, define_loop(variant)]
    end
  end

  def bind_constants(key)
    envelope = ShopifyEvents::Native.encode(TOPIC, STRING, nil, nil)
    bind(:ENVELOPE, envelope)
    bind(:FRAME, ([1].pack("q") + envelope).b.freeze)
    bind(:QID, ShopifyEvents::Native::Queue.open(key).id)
    bind(:TRANSPORT, ShopifyEvents.transport)
    bind(:NATIVE, ShopifyEvents.transport.native)
    ShopifyEvents::ExperimentLoops.prepare(self, key)
  end

  # Defines and returns `run_<variant>(n)`, which runs the body n times.
  def define_loop(variant)
    body = all.fetch(variant) { abort "unknown variant #{variant}; --list names them" }
    module_eval <<~RUBY, __FILE__, __LINE__ + 1
      def self.run_#{variant}(n)  # def self.run_emit(n)
        i = 0                     #   i = 0
        while i < n               #   while i < n
          #{body}                 #     ShopifyEvents.emit(TOPIC, STRING)
          i += 1                  #     i += 1
        end                       #   end
      end                         # end
    RUBY
    method(:"run_#{variant}")
  end
end

require_relative "../experiments/loops"
