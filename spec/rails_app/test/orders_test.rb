# frozen_string_literal: true

# Minitest integration tests of the app in `test` mode (the Rails default),
# with the gem's Minitest assertions, in transactional tests (Rails'
# default: each test runs inside a transaction rolled back at its end; the
# app's own transactions count as committed when their block ends).
# Run: RAILS_ENV=test ruby spec/rails_app/test/orders_test.rb
ENV["RAILS_ENV"] = "test"
require_relative "../app"
require "rails/test_help"
require "minitest/autorun"
require "shopify_events/testing"

class OrdersTest < ActionDispatch::IntegrationTest
  test "a request emits orders.created through the test transport" do
    post "/orders", params: { id: 7 }

    assert_response :created
    assert_equal "test", response.parsed_body["transport"]
    assert_event_emitted("orders.created", payload: { id: 7, pid: Process.pid }, key: "shop-1", times: 1)
  end

  test "events captured by an earlier test are cleared" do
    assert_no_events_emitted
  end

  test "a block form captures only the block's events" do
    post "/orders", params: { id: 1 }
    assert_event_emitted("orders.created", payload: { id: 2, pid: Process.pid }) { post "/orders", params: { id: 2 } }
  end

  test "a failed assertion lists what was emitted instead" do
    post "/orders", params: { id: 3 }
    failure = assert_raises(Minitest::Assertion) { assert_event_emitted("orders.created", payload: { id: 4 }) }

    assert_match(/expected an event on "orders.created" with payload \{:id=>4\}/, failure.message)
    assert_match(/1 event was emitted:\n  1\. orders.created key="shop-1" .*payload=\{"id":3,/, failure.message)
  end

  test "a request whose transaction rolls back sends nothing: its event is rolled back" do
    assert_event_rolled_back("orders.created", payload: { id: 5, pid: Process.pid }, times: 1) do
      post "/orders", params: { id: 5, fail: 1 }
    end

    assert_equal false, response.parsed_body["committed"]
    assert_no_events_emitted
  end

  test "an outbox event is written and deleted within the request, and sent" do
    post "/orders", params: { id: 6, outbox: 1 }

    assert_event_emitted("orders.created", payload: { id: 6, pid: Process.pid }, times: 1)
    assert_equal 0, ActiveRecord::Base.connection.select_value("SELECT COUNT(*) FROM shopify_events_outbox").to_i
  end

  test "every event carries the request id" do
    post "/orders", params: { id: 8 }, headers: { "X-Request-Id" => "req-8" }

    assert_event_emitted("orders.created", headers: { "request_id" => "req-8" })
  end
end
