# frozen_string_literal: true

# For apps without Rails' Railtie that load ActiveRecord after
# shopify_events: `require "shopify_events/active_record"` makes events
# follow ActiveRecord transactions (README, "Rails").
require "active_record"
require "shopify_events"

ShopifyEvents::Transactions.install
