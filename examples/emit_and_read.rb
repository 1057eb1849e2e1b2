# frozen_string_literal: true

# Emits three events into a private demo queue, shows the queue's depth, then
# reads them back and prints each decoded event as one JSON line.
require "json"
require "time"
require "shopify_events"

key = 0x5345_D000 | (Process.pid & 0xFFF)
ShopifyEvents.configure do |c|
  c.transport = :sysv
  c.queue_key = key
end

ShopifyEvents.emit("checkout.completed", { order_id: 1001, amount: 42.5, at: Time.now }, key: "shop-1")
ShopifyEvents.emit("checkout.completed", { order_id: 1002, amount: 7.25, tags: %w[gift] },
                   key: "shop-2", headers: { "source" => "demo" })
ShopifyEvents.emit("app.heartbeat", "raw bytes are fine too")

queue = ShopifyEvents::Native::Queue.open(key)
begin
  warn "queue #{format("0x%08x", key)}: #{queue.stat.slice(:depth, :bytes, :capacity)}"
  while (bytes = queue.try_receive)
    event = ShopifyEvents::Event.decode(bytes)
    puts JSON.generate(id: event.id, topic: event.topic, key: event.key, headers: event.headers,
                       time: event.time.iso8601(6), payload: event.data)
  end
  warn "stats: #{ShopifyEvents.stats}"
ensure
  queue.remove
end
