# frozen_string_literal: true

$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))
require "shopify_events"
require "stringio"

Dir[File.join(__dir__, "support", "**", "*.rb")].each { |f| require f }

RSpec.configure do |config|
  config.disable_monkey_patching!
  config.order = :random
  Kernel.srand(config.seed)
  config.include SpecQueues

  config.before do
    ShopifyEvents.reset!
  end

  config.after do
    remove_spec_queues
    ShopifyEvents.reset!
  end
end
