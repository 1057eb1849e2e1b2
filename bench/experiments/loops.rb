# frozen_string_literal: true

# Loops over the benchmark-only prototypes (bench/experiments/native), for
# bench/profile/loops.rb:
#
# - x_<variant> / xh_<variant>: Experiments::Emitter#emit_<variant> with the
#   200-byte String / the small Hash, called like the product's native
#   method (`native` / `native_hash` in emit_loop.rb); x_base is the copy;
# - m_*: module-level emits, one Ruby call per event:
#   native_kw_* a C function taking the keywords itself,
#   rubykw_* a Ruby method with keyword arguments calling one positional
#   native function (RubyKw below), *_key passing `key: "shop-1"`.
module ShopifyEvents
  module ExperimentLoops
    # A module-level `emit` written in Ruby: keyword arguments (no Hash is
    # allocated for them in a Ruby-to-Ruby call), then one native call.
    # Without instrumentation there is nothing else to check: the prototype
    # assumes the method is swapped for an instrumented one when subscribers
    # appear.
    module RubyKw
      def self.emit(topic, payload, key: nil, headers: nil)
        Experiments.positional_all(topic, payload, key, headers) || dropped
      end

      def self.emit_base(topic, payload, key: nil, headers: nil)
        Experiments.positional_base(topic, payload, key, headers) || dropped
      end

      def self.dropped = nil
    end

    module_function

    # Binds EXP (an experimental emitter) in `loops` and points the
    # module-level prototypes at the queue at `key`.
    def prepare(loops, key)
      loops.bind(:EXP, Experiments::Emitter.new(key, 0o600))
      Experiments.configure(key, 0o600)
    end
  end
end

ShopifyEvents::Experiments::VARIANTS.each_key do |variant|
  EmitLoops::EXTRA["x_#{variant}"] = "EXP.emit_#{variant}(TOPIC, STRING, nil, nil)"
  EmitLoops::EXTRA["xh_#{variant}"] = "EXP.emit_#{variant}(TOPIC, HASH, nil, nil)"
end
EmitLoops::EXTRA.merge!(
  "m_native_kw_base" => "ShopifyEvents::Experiments.native_kw_base(TOPIC, STRING)",
  "m_native_kw_base_key" => "ShopifyEvents::Experiments.native_kw_base(TOPIC, STRING, key: \"shop-1\")",
  "m_native_kw_all" => "ShopifyEvents::Experiments.native_kw_all(TOPIC, STRING)",
  "m_native_kw_all_key" => "ShopifyEvents::Experiments.native_kw_all(TOPIC, STRING, key: \"shop-1\")",
  "m_native_kw_all_hash" => "ShopifyEvents::Experiments.native_kw_all(TOPIC, HASH)",
  "m_rubykw_base" => "ShopifyEvents::ExperimentLoops::RubyKw.emit_base(TOPIC, STRING)",
  "m_rubykw_all" => "ShopifyEvents::ExperimentLoops::RubyKw.emit(TOPIC, STRING)",
  "m_rubykw_all_key" => "ShopifyEvents::ExperimentLoops::RubyKw.emit(TOPIC, STRING, key: \"shop-1\")",
  "m_rubykw_all_hash" => "ShopifyEvents::ExperimentLoops::RubyKw.emit(TOPIC, HASH)",
  "m_positional_all" => "ShopifyEvents::Experiments.positional_all(TOPIC, STRING, nil, nil)",
  "m_positional_all_noidstr" => "ShopifyEvents::Experiments.positional_all_noidstr(TOPIC, STRING, nil, nil)"
)
