# frozen_string_literal: true

# One side of bench/emit_ab.rb: in this process, interleaved batches of the
# msgsnd floor, ShopifyEvents.emit(200-byte String), ShopifyEvents.emit of a
# small Hash and the native sysv emitter called directly, into a healthy
# queue; prints the medians as JSON. The clock is wall time, or with "cpu"
# this thread's CPU time (what other processes' load leaves out).
# Uses only what every version of the gem has (and the spool, where there
# is one, on a temp dir, as production would have it).

require "json"
require "tmpdir"
require "shopify_events"

rounds = Integer(ARGV.fetch(0))
batch = Integer(ARGV.fetch(1))
cpu = ARGV.fetch(2, "wall") == "cpu"
topic = "bench.events"
string = ("a".."z").cycle.first(200).join.freeze
hash = { user_id: 12_345, action: "checkout", shop: "example.myshopify.com", amount: 42.5, tags: %w[a b c] }.freeze
key = 0x7EAB_0000 | (Process.pid & 0xFFFF)
clock = cpu ? Process::CLOCK_THREAD_CPUTIME_ID : Process::CLOCK_MONOTONIC
now = -> { Process.clock_gettime(clock, :nanosecond) }

queue = ShopifyEvents::Native::Queue.create(key, 0o600)
spool = Dir.mktmpdir("emit-ab-")
begin
  queue.capacity = batch * 512
  ShopifyEvents.configure do |c|
    c.transport = :sysv
    c.queue_key = key
    c.spool_dir = spool if c.respond_to?(:spool_dir=)
  end
  native = ShopifyEvents.transport.native
  envelope = ShopifyEvents::Native.encode(topic, string, nil, nil)
  runs = {
    "floor" => lambda {
      t = now.call
      wall = ShopifyEvents::Native::Bench.msgsnd_floor(key, envelope, batch)
      cpu ? now.call - t : wall
    },
    "emit" => lambda {
      i = 0
      t = now.call
      while i < batch
        ShopifyEvents.emit(topic, string)
        i += 1
      end
      now.call - t
    },
    "hash" => lambda {
      i = 0
      t = now.call
      while i < batch
        ShopifyEvents.emit(topic, hash)
        i += 1
      end
      now.call - t
    },
    "native" => lambda {
      i = 0
      t = now.call
      while i < batch
        native.emit(topic, string, nil, nil)
        i += 1
      end
      now.call - t
    }
  }
  samples = runs.transform_values { [] }
  (rounds + 3).times do |round|
    runs.each do |name, run|
      ns = run.call
      nil while queue.try_receive
      samples[name] << ns.fdiv(batch) if round >= 3
    end
  end
  raise "dropped #{ShopifyEvents.stats[:dropped]}" unless ShopifyEvents.stats[:dropped].zero?

  puts JSON.generate(samples.transform_values { |s| s.sort[s.size / 2] })
ensure
  queue.remove
  FileUtils.rm_rf(spool)
end
