# frozen_string_literal: true

require "shopify_events/transactions/tracker"
require "shopify_events/transactions/pending"
require "shopify_events/transactions/delivery"
require "shopify_events/outbox"

module ShopifyEvents
  # Events that follow ActiveRecord transactions (README, "Rails").
  #
  # Inside a transaction, `emit` encodes the event at once (so validation
  # errors raise at the call and the event keeps the id and emit time of the
  # call) and hands it to a Pending record of the connection; the commit of
  # the outermost transaction sends the envelope through the transport, a
  # rollback of it or of the savepoint the event was emitted in discards
  # it. The connection that counts is the one of `transaction_connection`
  # (ActiveRecord::Base) in the current thread; a transaction that is not
  # joinable (the one `use_transactional_tests` wraps each test in) does not
  # hold events back, as it holds back no after_commit callback either.
  #
  # Rails 6.1 has no public hook for "after the outermost commit"; this
  # uses transaction records, the mechanism of model after_commit
  # callbacks. Rails 7.2's ActiveRecord::Base.current_transaction.after_commit
  # and ActiveRecord.after_all_transactions_commit offer the same through a
  # public API; see the README.
  module Transactions
    # Fiber-local: the Pending record of the last deferred emit.
    CURRENT = :shopify_events_pending
    COUNTERS = %i[deferred sent rolled_back failed outbox_written outbox_deleted swept outbox_damaged].freeze

    @installed = false
    @counters = COUNTERS.to_h { |name| [name, 0] }
    @connection_class = nil
    @connection_config = nil

    class << self
      # Hooks into ActiveRecord (idempotent): ShopifyEvents calls it once
      # ActiveRecord::Base is loaded.
      def install
        return if @installed

        @installed = true
        Tracker.install
      end

      def installed?
        @installed
      end

      # What emit hands the event to while a transaction is open: the
      # Pending record of the current transaction (its outbox target for
      # outbox events), or nil to send at once. `after_commit` is nil (the
      # setting) or true; `outbox` nil (the setting), true or false. An
      # outbox event follows its transaction whatever the after_commit setting.
      def target(topic, after_commit, outbox)
        return nil unless Tracker.began_by?(Thread.current)

        config = ShopifyEvents.config
        outbox = outbox?(config, topic, outbox)
        return nil if after_commit.nil? && !outbox && config.after_commit == :immediate

        pending = current_pending(config)
        return nil unless pending

        outbox ? pending.outboxed : pending
      end

      # The Pending record events emitted now join, or nil outside a
      # joinable transaction. The last one found is kept per fiber: while
      # it is still open in its connection's current transaction, the next
      # emit skips finding the connection (ActiveRecord 6.1's pool lookup
      # costs microseconds).
      def current_pending(config)
        cached = Thread.current[CURRENT]
        return cached if cached&.current?(config)

        connection = active_connection(config)
        return nil unless connection

        transaction = connection.current_transaction
        return nil unless transaction.joinable?

        Thread.current[CURRENT] = Pending.for(connection, transaction, config)
      end

      # Holds a deferred envelope to the transport's size limit at the call.
      def check_size(envelope)
        transport = ShopifyEvents.transport
        limit = transport.envelope_limit if transport.respond_to?(:envelope_limit)
        return if limit.nil? || envelope.bytesize <= limit

        raise PayloadTooLarge, "event envelope is #{envelope.bytesize} bytes, larger than the #{limit}-byte limit " \
                               "of the #{ShopifyEvents.config.transport} transport; send a smaller payload, or " \
                               "raise the limit (sysv: sysctl kernel.msgmax; direct: Kafka's message.max.bytes)"
      end

      # @api private: the counters stats reports (mutated in place).
      attr_reader :counters

      # Counts since the process started: deferred, sent (after commit),
      # rolled_back, failed (committed but not sent), outbox_written,
      # outbox_deleted, swept (re-sent by the outbox sweeper), outbox_damaged
      # (rows the sweeper found unreadable and left).
      def stats
        @counters.dup
      end

      # The connection whose transaction counts, if this thread holds one
      # (never checks one out).
      def active_connection(config = ShopifyEvents.config)
        connection_class(config).connection_pool.active_connection?
      rescue ::ActiveRecord::ConnectionNotEstablished
        nil
      end

      # The ActiveRecord class named by `transaction_connection`.
      def connection_class(config = ShopifyEvents.config)
        return @connection_class if @connection_config.equal?(config)

        @connection_class = resolve(config.transaction_connection)
        @connection_config = config
        @connection_class
      end

      private

      def outbox?(config, topic, outbox)
        return outbox unless outbox.nil?

        config.outbox_topics.include?(topic.is_a?(Symbol) ? topic.name : topic)
      end

      def resolve(name)
        klass = name.is_a?(Module) ? name : Object.const_get(name.delete_prefix("::"))
        return klass if klass <= ::ActiveRecord::Base

        raise ConfigurationError, "transaction_connection #{name.inspect} is not an ActiveRecord class"
      rescue NameError
        raise ConfigurationError, "transaction_connection #{name.inspect} names no class: use the ActiveRecord " \
                                  "class of the database whose transactions events follow, e.g. \"ActiveRecord::Base\""
      end
    end
  end
end
