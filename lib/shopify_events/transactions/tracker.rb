# frozen_string_literal: true

module ShopifyEvents
  module Transactions
    # Knows, for the whole process, which ActiveRecord connections have a
    # transaction open and which threads began them, so that `emit` outside
    # every transaction pays one instance variable read (ShopifyEvents'
    # @detour), and a thread that began no transaction pays a Set lookup
    # (`began_by?`) instead of finding its connection (some microseconds in
    # ActiveRecord 6.1) while other threads have one open.
    #
    # Hooks on ActiveRecord's TransactionManager (one per connection) add a
    # manager to the registry, with the thread, before a transaction begins,
    # and remove the manager once its transaction stack is empty again,
    # whichever way it emptied (commit, rollback, a failed commit, a
    # connection reset). The registry is keyed by manager, so a repeated or
    # missed hook cannot make the count drift below the truth: a manager is
    # either in or out. What counts is only ever too high for a moment
    # (between a manager's last pop and its removal), which costs a precise
    # check, never a wrong send. A thread that begins a transaction on a
    # connection shared with another thread (`lock_thread`, system tests) is
    # added to that connection's threads too.
    #
    # A forked child keeps only the entries of the thread that forked (the
    # others' threads do not exist there).
    module Tracker
      # TransactionManager => Array of the threads that began its open transactions.
      @open = {}.compare_by_identity
      # Every thread in @open, frozen: read without the lock.
      @threads = [].freeze
      @lock = Mutex.new

      # Prepended to ActiveRecord::ConnectionAdapters::TransactionManager.
      module ManagerHooks
        def begin_transaction(...)
          Tracker.opening(self)
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

        # Before `manager` begins a transaction in the current thread.
        def opening(manager)
          thread = Thread.current
          return if @open[manager]&.include?(thread) # this thread is known to hold it

          @lock.synchronize do
            threads = (@open[manager] ||= [])
            next if threads.include?(thread)

            threads << thread
            publish
          end
        end

        # After `manager`'s transaction stack became empty.
        def closed(manager)
          @lock.synchronize { publish if @open.delete(manager) }
        end

        # Whether the current thread began a transaction that is still open.
        def began_by?(thread)
          @threads.include?(thread)
        end

        # In a forked child: only the forking thread's transactions go on.
        def forked
          @lock.synchronize do
            @open.each_value { |threads| threads.select! { |thread| thread.equal?(Thread.current) } }
            @open.reject! { |_, threads| threads.empty? }
            publish
          end
        end

        # How many connections have a transaction open (for specs).
        def open_count
          @lock.synchronize { @open.size }
        end

        private

        # Call with @lock held.
        def publish
          @threads = @open.values.flatten.uniq.freeze
          ShopifyEvents.open_transactions = @open.size
        end
      end
    end
  end
end
