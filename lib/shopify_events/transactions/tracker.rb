# frozen_string_literal: true

module ShopifyEvents
  module Transactions
    # Knows, for the whole process, which ActiveRecord connections have a
    # transaction open, so that `emit` outside every transaction pays one
    # instance variable read (ShopifyEvents' @detour) instead of looking up
    # its connection.
    #
    # Hooks on ActiveRecord's TransactionManager (one per connection) add a
    # manager to the registry before its outermost transaction begins and
    # remove it once its transaction stack is empty again, whichever way it
    # emptied (commit, rollback, a failed commit, a connection reset). The
    # registry is keyed by manager, so a repeated or missed hook cannot make
    # the count drift below the truth: a manager is either in or out. What
    # counts is only ever too high for a moment (between a manager's last
    # pop and its removal), which costs a precise check, never a wrong send.
    #
    # A forked child keeps only the managers of the thread that forked (the
    # others' threads do not exist there).
    module Tracker
      @open = {}.compare_by_identity
      @lock = Mutex.new

      # Prepended to ActiveRecord::ConnectionAdapters::TransactionManager.
      module ManagerHooks
        def begin_transaction(...)
          Tracker.opening(self) if open_transactions.zero?
          super
        rescue Exception # rubocop:disable Lint/RescueException
          Tracker.closed(self) if open_transactions.zero?
          raise
        end

        def commit_transaction(...)
          super
        ensure
          Tracker.closed(self) if open_transactions.zero?
        end

        def rollback_transaction(...)
          super
        ensure
          Tracker.closed(self) if open_transactions.zero?
        end
      end

      # Prepended to ActiveRecord::ConnectionAdapters::AbstractAdapter: a
      # reset (disconnect, reconnect) replaces the transaction manager.
      module AdapterHooks
        def reset_transaction(...)
          previous = @transaction_manager
          super
        ensure
          Tracker.closed(previous) if previous && !previous.equal?(@transaction_manager)
        end
      end

      class << self
        def install
          ::ActiveRecord::ConnectionAdapters::TransactionManager.prepend(ManagerHooks)
          ::ActiveRecord::ConnectionAdapters::AbstractAdapter.prepend(AdapterHooks)
          ::ActiveSupport::ForkTracker.after_fork { Tracker.forked } if defined?(::ActiveSupport::ForkTracker)
        end

        def opening(manager)
          @lock.synchronize do
            next if @open.key?(manager)

            @open[manager] = Thread.current
            ShopifyEvents.open_transactions = @open.size
          end
        end

        def closed(manager)
          @lock.synchronize do
            next unless @open.delete(manager)

            ShopifyEvents.open_transactions = @open.size
          end
        end

        # In a forked child: only the forking thread's transactions go on.
        def forked
          @lock.synchronize do
            @open.select! { |_, thread| thread.equal?(Thread.current) }
            ShopifyEvents.open_transactions = @open.size
          end
        end

        # How many connections have a transaction open (for specs).
        def open_count
          @lock.synchronize { @open.size }
        end
      end
    end
  end
end
