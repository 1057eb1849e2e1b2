# frozen_string_literal: true

# Loops over the benchmark-only prototypes (bench/experiments/native), for
# bench/profile/loops.rb:
#
# - x_<variant> / xh_<variant>: Experiments::Emitter#emit_<variant> with the
#   200-byte String / the small Hash, called like the product's native
#   method (`native` / `native_hash` in loops.rb); x_base is the copy.
module ShopifyEvents
  module ExperimentLoops
    module_function

    # Binds EXP (an experimental emitter) in `loops`.
    def prepare(loops, key)
      loops.bind(:EXP, Experiments::Emitter.new(key, 0o600))
    end
  end
end

ShopifyEvents::Experiments::VARIANTS.each_key do |variant|
  EmitLoops::EXTRA["x_#{variant}"] = "EXP.emit_#{variant}(TOPIC, STRING, nil, nil)"
  EmitLoops::EXTRA["xh_#{variant}"] = "EXP.emit_#{variant}(TOPIC, HASH, nil, nil)"
end
