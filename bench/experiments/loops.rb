# frozen_string_literal: true

# Loops over the benchmark-only prototypes (bench/experiments/native), for
# bench/profile/loops.rb. Filled in as prototypes land.
module ShopifyEvents
  module ExperimentLoops
    module_function

    # Binds what the prototype loops need in `loops` for the queue at `key`.
    def prepare(_loops, _key); end
  end
end
