# frozen_string_literal: true

module ShopifyEvents
  module Transactions
    # What happens to a Pending record's events when ActiveRecord finishes
    # its transaction: sent in order after the commit, discarded after a
    # rollback.
    module Delivery
      class << self
        # Sends the events of a committed transaction, in order, through the
        # current transport, then deletes the outbox rows of those sent. Never
        # raises for one event's failure (it is logged; an outbox row stays for
        # the sweeper), except that the first failure of an `emit!` event
        # without outbox is raised after all were tried.
        def committed(connection, events)
          transport = ShopifyEvents.transport
          outcomes = events.map { |event| [event, attempt(transport, event)] }
          delete_sent_rows(connection, outcomes)
          failure = outcomes.find { |event, outcome| event.raises? && outcome.is_a?(Exception) }
          raise failure.last if failure
        end

        # Forgets the events of a rolled-back transaction or savepoint; a
        # transport that records them (test, log) is told.
        def rolled_back(events)
          Transactions.counters[:rolled_back] += events.size
          transport = ShopifyEvents.transport
          return unless transport.respond_to?(:rolled_back)

          events.each { |event| transport.rolled_back(event.envelope) }
        rescue StandardError => e
          ShopifyEvents.config.logger.warn("shopify_events: cannot report rolled-back events: #{e.class}: #{e.message}")
        end

        private

        def delete_sent_rows(connection, outcomes)
          rows = outcomes.filter_map { |event, outcome| event.id if event.outbox && outcome == true }
          Outbox.delete(connection, rows) unless rows.empty?
        end

        # true (sent), false (dropped: the transport counted and logged it) or
        # the exception it raised (logged here).
        def attempt(transport, event)
          id = event.raises? ? transport.send_envelope!(event.envelope) : transport.send_envelope(event.envelope)
          Transactions.counters[:sent] += 1 if id
          !id.nil?
        rescue StandardError => e
          not_sent(event, e)
          e
        end

        def not_sent(event, error)
          Transactions.counters[:failed] += 1
          kept = event.outbox ? "; its outbox row stays for the sweeper" : ""
          ShopifyEvents.config.logger.error("shopify_events: event #{event.id} was committed but not sent: " \
                                            "#{error.class}: #{error.message}#{kept}")
        end
      end
    end
  end
end
