# frozen_string_literal: true

require "json"

module ShopifyEvents
  # One event as the pipeline carries it, decoded from its envelope. The
  # `test` transport captures these.
  Event = Struct.new(:id, :topic, :key, :headers, :payload, :time, :json, keyword_init: true) do
    # Decodes envelope bytes (see docs/PROTOCOL.md).
    def self.decode(bytes)
      fields = Native.decode(bytes)
      micros = fields.fetch(:time_us)
      new(
        id: fields.fetch(:id), topic: fields.fetch(:topic), key: fields.fetch(:key),
        headers: fields.fetch(:headers), payload: fields.fetch(:payload),
        time: Time.at(micros / 1_000_000, micros % 1_000_000, :usec).utc, json: fields.fetch(:json)
      )
    end

    # The payload as Ruby data: parsed JSON for Hash/Array payloads, the raw
    # String otherwise.
    def data
      json ? JSON.parse(payload) : payload
    end

    def json?
      json
    end
  end
end
