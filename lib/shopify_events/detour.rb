# frozen_string_literal: true

# ShopifyEvents' slow path (the module is documented in shopify_events.rb).
module ShopifyEvents
  # What `emit` does when it must do more than hand the event to the
  # transport: add headers (HeaderContext), defer the event to the commit of
  # the open ActiveRecord transaction (Transactions), publish notifications
  # (Instrumentation). `emit` takes this path only while `@detour` is true
  # (and so `@emitter` nil), so an app without any of these pays one
  # instance variable read.
  module Detour
    # `after_commit:` values: nil follows the `after_commit` setting.
    AFTER_COMMIT = { nil => nil, true => true, :defer => true, false => false, :immediate => false }.freeze
    OUTBOX = [nil, true, false].freeze
  end

  class << self
    # @api private: Instrumentation turns the instrumented path on when
    # subscribers change and off once it found nobody listening.
    def watched=(value)
      @detour_lock.synchronize do
        @watched = value
        refresh_detour
      end
    end

    # @api private: Transactions::Tracker publishes how many connections of
    # this process have a transaction open.
    def open_transactions=(count)
      @detour_lock.synchronize do
        @open_transactions = count
        refresh_detour
      end
    end

    # Whether emit is on its fast path (for specs and benchmarks).
    def plain_emit?
      !@detour
    end

    private

    # Call with @detour_lock held.
    def refresh_detour
      @detour = @watched || @open_transactions.positive? || !@headers.nil?
      current = @transport
      @emitter = @detour || current.nil? ? nil : fast_emitter(current)
    end

    def fast_emitter(transport)
      transport.respond_to?(:emitter) ? transport.emitter : transport
    end

    # emit / emit! (`bang`) beyond the fast path.
    def detour(transport, bang, topic, payload, key, headers, after_commit, outbox) # rubocop:disable Metrics/ParameterLists
      after_commit = after_commit_option(after_commit, outbox)
      headers = @headers.call(headers) if @headers
      transport = deferral(transport, topic, after_commit, outbox) if @open_transactions.positive?
      return @instrumentation.public_send(bang ? :emit! : :emit, transport, topic, payload, key, headers) if @watched

      bang ? transport.emit!(topic, payload, key, headers) : transport.emit(topic, payload, key, headers)
    end

    # Where an event goes while some connection has a transaction open: the
    # current transaction's Pending record, or the transport.
    def deferral(transport, topic, after_commit, outbox)
      return transport if after_commit == false

      Transactions.target(topic, after_commit, outbox) || transport
    end

    # `after_commit:` as nil, true or false, after checking it and `outbox:`.
    def after_commit_option(after_commit, outbox)
      return nil if after_commit.nil? && outbox.nil?

      after_commit = Detour::AFTER_COMMIT.fetch(after_commit) do
        raise ArgumentError, "after_commit: #{after_commit.inspect} is not valid: use true (send when the " \
                             "transaction commits) or false (send at once, even if it rolls back)"
      end
      check_outbox(outbox, after_commit)
      after_commit
    end

    def check_outbox(outbox, after_commit)
      unless Detour::OUTBOX.include?(outbox)
        raise ArgumentError, "outbox: #{outbox.inspect} is not valid: use true (write the event to the outbox " \
                             "table in the transaction) or false"
      end
      return unless outbox && after_commit == false

      raise ArgumentError, "outbox: true sends the event when its transaction commits, after_commit: false at " \
                           "once: pass one of them"
    end
  end
end
