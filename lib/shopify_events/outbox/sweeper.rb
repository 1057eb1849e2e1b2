# frozen_string_literal: true

module ShopifyEvents
  module Outbox
    # Re-sends outbox rows that a process left behind when it died between
    # a commit and the send after it (SweeperThread runs it in the
    # background; Outbox.sweep runs it once).
    #
    # A sweep walks rows older than `outbox_sweep_after` (younger ones are
    # being sent by the process that committed them) and younger than
    # `outbox_max_age`, oldest first, at most `outbox_sweep_rate` a second.
    # It claims each row by deleting it inside a short transaction, sends
    # the stored envelope as it is (same event id and emit time), and
    # commits; if the transport does not take it, the transaction rolls back
    # and the row stays. Two sweepers never both send a row: the second's
    # DELETE waits for the first's commit and then finds nothing. A row
    # whose bytes are not an intact envelope is logged with its id and left
    # (once: this sweeper skips it from then on).
    class Sweeper
      BATCH = 100
      BUSY_RETRIES = 40
      # Damaged rows remembered, at most (beyond, they are logged again).
      MAX_DAMAGED = 10_000

      attr_reader :config

      def initialize(config = ShopifyEvents.config)
        @config = config
        @logger = config.logger
        @reported_old = 0
        @damaged = {}
      end

      # One sweep; returns how many rows it re-sent, or :no_table.
      # `older_than:` and `max_age:` (nil: no bound) override the settings.
      def sweep(older_than: @config.outbox_sweep_after, max_age: @config.outbox_max_age)
        Transactions.connection_class(@config).connection_pool.with_connection do |connection|
          next :no_table unless connection.data_source_exists?(TABLE)

          now = Time.now.to_f
          upper = Sweeper.id_bound(now - older_than + 0.001) # the current millisecond included
          lower = max_age && Sweeper.id_bound(now - max_age)
          resent = sweep_range(connection, lower, upper)
          report_old(connection, lower, max_age) if lower
          resent
        end
      end

      # The smallest event id (as a String) of events emitted at `time`
      # (Unix seconds): UUIDv7 ids start with their emit milliseconds, so
      # `event_id < bound` selects the events emitted before.
      def self.id_bound(time)
        hex = format("%012x", (time * 1000).floor.clamp(0, (1 << 48) - 1))
        "#{hex[0, 8]}-#{hex[8, 4]}"
      end

      private

      def sweep_range(connection, after, upper)
        started = monotonic
        resent = 0
        loop do
          rows = Outbox.rows_before(connection, upper, after: after, limit: BATCH)
          rows.each do |id, envelope|
            after = id
            next if @damaged.key?(id)

            outcome = claim_and_send(connection, id, envelope)
            return resent if outcome == :dropped

            next unless outcome == :sent

            resent += 1
            throttle(started, resent)
          end
          return resent if rows.size < BATCH
        end
      end

      # :sent, :gone (another process took it), :dropped (the transport is
      # full: stop this sweep) or :damaged. SQLite answers "busy" at once,
      # instead of waiting, when another connection claims a row at the same
      # time (waiting could deadlock): the claim is retried a few times.
      def claim_and_send(connection, id, envelope)
        attempts = 0
        begin
          claim(connection, id, envelope)
        rescue ::ActiveRecord::StatementInvalid => e
          raise unless busy?(e) && (attempts += 1) <= BUSY_RETRIES

          sleep(0.005 * attempts)
          retry
        end
      end

      def claim(connection, id, envelope)
        outcome = :gone
        connection.transaction(requires_new: true) do
          next unless Outbox.delete_row(connection, id)

          outcome = send_row(id, envelope)
          raise ::ActiveRecord::Rollback unless outcome == :sent
        end
        outcome
      end

      def busy?(error)
        (defined?(::SQLite3::BusyException) && error.cause.is_a?(::SQLite3::BusyException)) ||
          error.message.include?("database is locked")
      end

      def send_row(id, envelope)
        sent = ShopifyEvents.transport.send_envelope(envelope)
        return :dropped unless sent
        return damaged(id, "it holds the envelope of event #{sent}") unless sent == id

        Transactions.counters[:swept] += 1
        :sent
      rescue DecodeError => e
        damaged(id, e.message)
      end

      def damaged(id, reason)
        @damaged[id] = true if @damaged.size < MAX_DAMAGED
        Transactions.counters[:outbox_damaged] += 1
        @logger.error("shopify_events: outbox row #{id} in #{TABLE} is damaged and was not sent: #{reason}. " \
                      "It stays in the table; delete it once checked.")
        :damaged
      end

      def throttle(started, resent)
        ahead = resent.fdiv(@config.outbox_sweep_rate) - (monotonic - started)
        sleep(ahead) if ahead.positive?
      end

      def report_old(connection, lower, max_age)
        count = Outbox.count_before(connection, lower)
        return if count == @reported_old

        @reported_old = count
        return if count.zero?

        @logger.warn("shopify_events: #{count} outbox rows are older than outbox_max_age (#{max_age}s) and are " \
                     "not re-sent; send them with ShopifyEvents::Outbox.sweep(max_age: nil) once checked")
      end

      def monotonic
        Process.clock_gettime(Process::CLOCK_MONOTONIC)
      end
    end
  end
end
