# frozen_string_literal: true

module ShopifyEvents
  module Testing
    # The transport `capture_events` puts in place: a `test` transport that
    # can also take the events of a nested capture.
    class Capture < Transports::Test
      # Appends the events another capture (a nested one) holds.
      def record_all(capture)
        sent = capture.events
        rolled_back = capture.rolled_back_events
        @mutex.synchronize do
          @events.concat(sent)
          @rolled_back.concat(rolled_back)
        end
      end

      def stats
        super.merge(transport: :capture)
      end
    end
  end
end
