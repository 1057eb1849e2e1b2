# frozen_string_literal: true

# rspec-rails request specs of the app in `test` mode, with the gem's RSpec
# matcher. Not named *_spec.rb: rails_app_spec.rb runs it in a child process
# (`rspec -O /dev/null spec/rails_app/spec/orders_request.rb`).
ENV["RAILS_ENV"] = "test"
require_relative "../app"
require "rspec/rails"
require "shopify_events/testing"

# Each example runs in a transaction rolled back at its end (as most apps'
# rails_helper sets it); the app's own transactions commit when their block ends.
RSpec.configure { |config| config.use_transactional_fixtures = true }

RSpec.describe "POST /orders", type: :request do
  it "emits orders.created with the request's id and key" do
    expect { post "/orders", params: { id: 9 } }
      .to emit_event("orders.created").with(id: 9, pid: Process.pid).with_key("shop-1").once
    expect(response).to have_http_status(:created)
  end

  it "matches payloads with composed matchers" do
    expect { post "/orders", params: { id: 10 } }
      .to emit_event("orders.created").with(hash_including("id" => 10))
  end

  it "fails listing what was emitted instead" do
    expect do
      expect { post "/orders", params: { id: 11 } }.to emit_event("orders.deleted")
    end.to raise_error(RSpec::Expectations::ExpectationNotMetError,
                       /expected an event on "orders.deleted", but 1 event was emitted:\n  1\. orders.created/)
  end

  it "does not emit on a bad request" do
    expect { post "/orders", params: {} }.not_to emit_event("orders.created")
  end

  it "rolls back the event of a request whose transaction rolls back" do
    expect { post "/orders", params: { id: 12, fail: 1 } }
      .to roll_back_event("orders.created").with(id: 12, pid: Process.pid).once
    expect(response.parsed_body["committed"]).to be(false)
  end

  it "sends an outbox event and leaves no row" do
    expect do
      post "/orders", params: { id: 13, outbox: 1 }
    end.to emit_event("orders.created").with(id: 13, pid: Process.pid)
    expect(ActiveRecord::Base.connection.select_value("SELECT COUNT(*) FROM shopify_events_outbox").to_i).to eq(0)
  end
end
