# frozen_string_literal: true

require "minitest"
require "shopify_events/testing"

RSpec.describe ShopifyEvents::Testing do
  before { use_sysv_queue }

  it "capture_events returns the block's events and sends none of them" do
    events = described_class.capture_events do
      ShopifyEvents.emit("orders.created", { id: 1 }, key: "shop-1", headers: { "h" => "v" })
    end
    expect(events.map { |e| [e.topic, e.data, e.key, e.headers] })
      .to eq([["orders.created", { "id" => 1 }, "shop-1", { "h" => "v" }]])
    expect(ShopifyEvents.stats).to include(transport: :sysv, emitted: 0)
  end

  it "restores the previous transport after the block, also when it raises" do
    expect { described_class.capture_events { raise "boom" } }.to raise_error("boom")
    expect(ShopifyEvents.transport).to be_a(ShopifyEvents::Transports::Sysv)
  end

  it "reports a nested capture's events to the enclosing capture too" do
    inner = nil
    outer = described_class.capture_events do
      ShopifyEvents.emit("a", "1")
      inner = described_class.capture_events { ShopifyEvents.emit("b", "2") }
    end
    expect(inner.map(&:topic)).to eq(["b"])
    expect(outer.map(&:topic)).to eq(%w[a b])
  end

  describe "the RSpec matcher" do
    it "matches topic, payload (symbol keys normalized), key and headers" do
      expect { ShopifyEvents.emit("orders.created", { id: 1, at: :now }, key: 42, headers: { h: "v" }) }
        .to emit_event("orders.created").with(id: 1, at: "now").with_key("42").with_headers("h" => "v").once
    end

    it "fails listing what was emitted instead" do
      expect do
        expect { ShopifyEvents.emit("orders.updated", { id: 2 }, key: "k") }
          .to emit_event("orders.created").with(id: 1)
      end.to raise_error(RSpec::Expectations::ExpectationNotMetError,
                         Regexp.new(Regexp.escape(<<~MESSAGE.chomp)))
                           expected an event on "orders.created" with payload {:id=>1}, but 1 event was emitted:
                             1. orders.updated key="k" payload={"id":2}
                         MESSAGE
    end

    it "when negated, fails listing the matching events" do
      expect do
        expect { ShopifyEvents.emit("orders.created", "raw") }.not_to emit_event("orders.created")
      end.to raise_error(RSpec::Expectations::ExpectationNotMetError,
                         /expected no event on "orders.created", but 1 event was emitted/)
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

    it "assert_event_emitted passes for a matching event and returns the matches" do
      matched = test.assert_event_emitted("orders.created", payload: { id: 1 }, key: "s") do
        ShopifyEvents.emit("orders.created", { id: 1 }, key: "s")
      end
      expect(matched.size).to eq(1)
    end

    it "assert_event_emitted fails listing what was emitted instead" do
      expect do
        test.assert_event_emitted("orders.created", times: 2) { ShopifyEvents.emit("orders.created", "x") }
      end.to raise_error(Minitest::Assertion,
                         /expected 2 of an event on "orders.created", but 1 event was emitted:\n  1\. orders.created/)
    end

    it "assert_no_events_emitted fails listing the events" do
      expect { test.assert_no_events_emitted { ShopifyEvents.emit("a.b", { x: 1 }) } }
        .to raise_error(Minitest::Assertion,
                        /expected no events, but 1 event was emitted:\n  1\. a\.b payload=\{"x":1\}/)
    end

    it "without a block, reads the test transport's events" do
      ShopifyEvents.configure { |c| c.transport = :test }
      ShopifyEvents.emit("t.x", "1")
      test.assert_event_emitted("t.x", payload: "1")
      expect { test.assert_no_events_emitted("t.x") }.to raise_error(Minitest::Assertion)
    end
  end
end
