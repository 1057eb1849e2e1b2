# frozen_string_literal: true

module ShopifyEvents
  module Testing
    # The transport `capture_events` puts in place: a `test` transport that
    # can also take the events of a nested capture.
    class Capture < Transports::Test
      # Appends events captured elsewhere (a nested capture's).
      def record_all(events)
        @mutex.synchronize { @events.concat(events) }
      end

      def stats
        super.merge(transport: :capture)
      end
    end
  end
end
