# frozen_string_literal: true

require "fileutils"
require "minitest"
require "shopify_events/testing"

# The test helpers with events deferred to ActiveRecord transactions
# (SQLite): an event counts as emitted once its transaction committed, and
# the rolled-back helpers see the ones whose transaction rolled back.
RSpec.describe "test helpers with ActiveRecord transactions" do
  before(:all) do
    SpecActiveRecord.load
    @dir = Dir.mktmpdir("spec-testing")
    ActiveRecord::Base.establish_connection(SpecActiveRecord.create_database(:sqlite, dir: @dir))
  end

  after(:all) do
    ActiveRecord::Base.remove_connection
    FileUtils.rm_rf(@dir)
  end

  before { ShopifyEvents.configure { |c| c.transport = :test } }

  def rolled_back_order(id)
    SpecOrder.transaction do
      ShopifyEvents.emit("orders.created", { id: id })
      raise ActiveRecord::Rollback
    end
  end

  describe "the RSpec matchers" do
    it "emit_event sees a deferred event once its transaction committed, not before" do
      expect { SpecOrder.transaction { ShopifyEvents.emit("orders.created", { id: 1 }) } }
        .to emit_event("orders.created").with(id: 1).once
      SpecOrder.transaction do
        expect { ShopifyEvents.emit("orders.created", { id: 2 }) }.not_to emit_event("orders.created")
      end
    end

    it "roll_back_event matches an event whose transaction rolled back" do
      expect { rolled_back_order(3) }.to roll_back_event("orders.created").with(id: 3).once
      expect { rolled_back_order(4) }.not_to emit_event("orders.created")
    end

    it "roll_back_event fails for a committed event, and for one also sent" do
      expect do
        expect { SpecOrder.transaction { ShopifyEvents.emit("orders.created", { id: 5 }) } }
          .to roll_back_event("orders.created")
      end.to raise_error(RSpec::Expectations::ExpectationNotMetError,
                         /to be emitted in a transaction that rolled back, but no events were rolled back/)
      expect do
        expect do
          rolled_back_order(6)
          SpecOrder.transaction { ShopifyEvents.emit("orders.created", { id: 6 }) }
        end.to roll_back_event("orders.created").with(id: 6)
      end.to raise_error(RSpec::Expectations::ExpectationNotMetError,
                         /to be rolled back and not sent, but 1 event was emitted:\n  1\. orders.created/)
    end
  end

  describe "the Minitest assertions" do
    let(:test) do
      Class.new do
        include Minitest::Assertions
        include ShopifyEvents::Testing::Assertions
        attr_accessor :assertions

        def initialize
          self.assertions = 0
        end
      end.new
    end

    it "assert_event_emitted counts a deferred event once committed; assert_event_rolled_back a rolled-back one" do
      test.assert_event_emitted("orders.created", payload: { id: 1 }) do
        SpecOrder.transaction { ShopifyEvents.emit("orders.created", { id: 1 }) }
      end
      test.assert_event_rolled_back("orders.created", payload: { id: 2 }, times: 1) { rolled_back_order(2) }
      committed = -> { SpecOrder.transaction { ShopifyEvents.emit("orders.created", "x") } }
      expect { test.assert_event_rolled_back("orders.created", &committed) }
        .to raise_error(Minitest::Assertion, /to be emitted in a transaction that rolled back, but no events were/)
    end

    it "under a transactional test's wrapping transaction, counts the app's transaction as committed when it ends" do
      SpecOrder.transaction(joinable: false) do # what use_transactional_tests opens around each test
        test.assert_event_emitted("orders.created") do
          SpecOrder.transaction { ShopifyEvents.emit("orders.created", { id: 1 }) }
        end
        test.assert_event_rolled_back("orders.created") { rolled_back_order(2) }
        raise ActiveRecord::Rollback # the test's end
      end
    end

    it "without a block, reads the test transport, whose events are cleared before each test" do
      rolled_back_order(7)
      SpecOrder.transaction { ShopifyEvents.emit("orders.created", { id: 8 }) }
      test.assert_event_rolled_back("orders.created", payload: { id: 7 })
      test.assert_event_emitted("orders.created", payload: { id: 8 })
      expect(ShopifyEvents::Testing.rolled_back_events.size).to eq(1)
      ShopifyEvents::Testing.clear_events
      expect(ShopifyEvents::Testing.rolled_back_events).to be_empty
    end
  end
end
