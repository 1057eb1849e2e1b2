# frozen_string_literal: true

# Emits a few events the way a Rails app would. The queue comes from
# SHOPIFY_EVENTS_QUEUE_KEY (script/demo sets it).
require "shopify_events"

count = Integer(ARGV.fetch(0, "5"))
count.times do |i|
  ShopifyEvents.emit("checkout.completed", { order_id: 1000 + i, total: 42.5 + i, at: Time.now },
                     key: "shop-#{i % 2}", headers: { "source" => "demo" })
end
ShopifyEvents.emit("app.heartbeat", "raw bytes are fine too")
warn "emitted #{count + 1} events: #{ShopifyEvents.stats}"
