# frozen_string_literal: true

require "open3"
require "rbconfig"

# The extension resolves every exception class it raises when it loads, so
# a class missing from lib/shopify_events/error.rb fails at `require`, not
# as an exception of the wrong class the first time something goes wrong.
RSpec.describe "exception classes of the extension" do
  lib = File.expand_path("../../lib", __dir__)

  it "are all defined in error.rb as ShopifyEvents::Error subclasses" do
    names = ShopifyEvents::Native::EXCEPTION_CLASSES
    expect(names).to be_frozen
    expect(names).to include("QueueFull", "BufferFull", "PayloadTooLarge", "InvalidTopic", "ConfigurationError")
    expect(ShopifyEvents.constants.map(&:to_s)).to include(*names)
    names.each { |name| expect(ShopifyEvents.const_get(name)).to be < ShopifyEvents::Error }
  end

  it "puts the spool's errors under the queue's: SpoolFull is a QueueFull, SpoolError a QueueError" do
    expect(ShopifyEvents::Native::EXCEPTION_CLASSES).to include("SpoolFull", "SpoolError")
    expect(ShopifyEvents::SpoolFull).to be < ShopifyEvents::QueueFull
    expect(ShopifyEvents::SpoolError).to be < ShopifyEvents::QueueError
  end

  it "makes loading the extension fail, naming the class, when one is missing" do
    script = <<~RUBY
      require "shopify_events/error"
      ShopifyEvents.send(:remove_const, :BufferFull)
      begin
        require "shopify_events/native"
      rescue NameError => e
        puts e.message
        exit 3
      end
    RUBY
    out, err, status = Open3.capture3(RbConfig.ruby, "-I", lib, "-e", script)
    expect(status.exitstatus).to eq(3), "expected a NameError at load, got: #{out}#{err}"
    expect(out).to include("ShopifyEvents::BufferFull").and include("lib/shopify_events/error.rb")
  end
end
