# frozen_string_literal: true

module ShopifyEvents
  module Transactions
    # The events deferred in one stretch of one transaction, in emit order,
    # registered with the connection as a transaction record (as Rails does
    # for models, and after_commit_everywhere for blocks): ActiveRecord calls
    # `committed!` when the outermost transaction commits, `rolledback!`
    # when it or the savepoint holding this record rolls back. A released
    # savepoint hands its records to its parent, in order.
    #
    # Order: one record per *stretch*, not per transaction. The connection
    # remembers its latest record (@shopify_events_pending); an emit joins
    # it only while it belongs to the current transaction and is still open.
    # Once a savepoint emitted, the parent's next emit starts a new record,
    # which lands after the savepoint's in the parent's list, so commit
    # sends every event in emit order.
    class Pending
      # The connection instance variable holding its latest record.
      TAIL = :@shopify_events_pending

      # One deferred event: `bang` for emit!, `outbox` when it has a row.
      Deferred = Struct.new(:id, :envelope, :bang, :outbox) do
        # Whether a failed send raises from the commit (emit! without outbox;
        # an outbox event's row stays for the sweeper instead).
        def raises?
          bang && !outbox
        end
      end

      # `emit`'s target for events that also go to the outbox table.
      class Outboxed
        def initialize(pending)
          @pending = pending
        end

        def emit(topic, payload, key, headers)
          @pending.defer([topic, payload, key, headers], bang: false, outbox: true)
        end

        def emit!(topic, payload, key, headers)
          @pending.defer([topic, payload, key, headers], bang: true, outbox: true)
        end

        def transport_name = :outbox
      end

      # The record events emitted now on `connection` join.
      def self.for(connection, transaction, config)
        tail = connection.instance_variable_get(TAIL)
        return tail if tail&.open_in?(transaction) && tail.config.equal?(config)

        pending = new(connection, transaction, config)
        connection.add_transaction_record(pending)
        connection.instance_variable_set(TAIL, pending)
      end

      attr_reader :connection, :config

      def initialize(connection, transaction, config)
        @connection = connection
        @transaction = transaction
        @config = config
        @events = []
        @state = :open
        @outboxed = nil
      end

      def open_in?(transaction)
        @state == :open && @transaction.equal?(transaction)
      end

      # Whether events emitted now (under `config`) still join this record:
      # it is open and its transaction is still its connection's current one.
      def current?(config)
        @state == :open && @config.equal?(config) && @transaction.equal?(@connection.current_transaction)
      end

      # emit's target for this record (transport duck type).
      def emit(topic, payload, key, headers)
        defer([topic, payload, key, headers], bang: false, outbox: false)
      end

      def emit!(topic, payload, key, headers)
        defer([topic, payload, key, headers], bang: true, outbox: false)
      end

      def transport_name = :deferred

      # emit's target for outbox events.
      def outboxed
        @outboxed ||= Outboxed.new(self)
      end

      # Encodes the event (emit's topic, payload, key, headers) now, so
      # validation errors raise here, writes it to the outbox table in the
      # transaction if asked, and keeps it for the commit. Returns its id.
      def defer(event, bang:, outbox:)
        id, envelope = Native.encode_event(*event)
        Transactions.check_size(envelope)
        Outbox.insert(@connection, id, envelope) if outbox
        @events << Deferred.new(id, envelope, bang, outbox)
        Transactions.counters[:deferred] += 1
        id
      end

      # ActiveRecord: the outermost transaction committed. Sends whatever
      # `should_run_callbacks` says: the data is committed either way.
      def committed!(*, **)
        return unless @state == :open

        @state = :committed
        Delivery.committed(@connection, @events)
      end

      # ActiveRecord: the transaction, or the savepoint holding this record, rolled back.
      def rolledback!(*, **)
        return unless @state == :open

        @state = :rolled_back
        Delivery.rolled_back(@events)
      end

      def before_committed!(*, **); end

      def trigger_transactional_callbacks?
        true
      end
    end
  end
end
