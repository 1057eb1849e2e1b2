# frozen_string_literal: true

module ShopifyEvents
  # ActiveSupport::Notifications events. ShopifyEvents builds one only when
  # ActiveSupport::Notifications is loaded; otherwise emitting pays a single
  # nil check. Whether anyone listens is cached and forgotten whenever a
  # subscriber comes or goes (a small hook on ActiveSupport's Fanout), so
  # with nobody subscribed an emit pays one instance variable read, not a
  # `listening?` lookup (177 ns in ActiveSupport 6.1). Payloads (README
  # "Rails" section):
  #
  # - "emit.shopify_events": every emit/emit! while someone subscribes.
  #   topic:, transport: (Symbol), bytes: (envelope size; measured by encoding
  #   the event once more, so only while subscribed), event_id: (nil if
  #   dropped). A raise adds ActiveSupport's exception:/exception_object:.
  # - "drop.shopify_events": emit could not hand the event to the transport
  #   (queue or buffer full, queue unusable); it returned nil.
  #   topic:, transport:, bytes:, error: (the reason, a String).
  # - "error.shopify_events": emit or emit! raised (invalid topic, payload too
  #   large, emit!'s QueueFull/BufferFull, ...). topic:, transport:, error:
  #   (the exception; it is re-raised).
  class Instrumentation
    EMIT = "emit.shopify_events"
    DROP = "drop.shopify_events"
    ERROR = "error.shopify_events"

    # The errors emit raises on its own account (re-raised after publishing).
    RAISED = [Error, TypeError, ArgumentError, EncodingError].freeze

    # Forgets the cached "is anyone listening" answers when a subscriber
    # comes or goes, on any ActiveSupport notifier (Fanout).
    module ListenerChanges
      def subscribe(...)
        super.tap { Instrumentation.listeners_changed! }
      end

      def unsubscribe(...)
        super.tap { Instrumentation.listeners_changed! }
      end
    end

    @instances = []
    @lock = Mutex.new

    class << self
      def track(instrumentation)
        @lock.synchronize do
          fanout = ::ActiveSupport::Notifications::Fanout
          fanout.prepend(ListenerChanges) unless fanout <= ListenerChanges
          @instances << instrumentation
        end
      end

      def listeners_changed!
        @instances.each(&:forget_listeners)
      end
    end

    def initialize(notifications = ::ActiveSupport::Notifications)
      @notifications = notifications
      @names = {}
      @listening = nil
      self.class.track(self)
    end

    # Called when subscribers change: the next emit asks ActiveSupport again.
    def forget_listeners
      @listening = nil
      ShopifyEvents.watched = true
    end

    # ShopifyEvents.emit with notifications. The path without subscribers
    # is a cached boolean plus the plain call.
    def emit(transport, topic, payload, key, headers)
      return instrumented(transport, :emit, [topic, payload, key, headers]) if listening?

      transport.emit(topic, payload, key, headers) || dropped(transport, [topic, payload, key, headers])
    rescue *RAISED => e
      raised(transport, topic, e)
    end

    # ShopifyEvents.emit! with notifications.
    def emit!(transport, topic, payload, key, headers)
      return instrumented(transport, :emit!, [topic, payload, key, headers]) if listening?

      transport.emit!(topic, payload, key, headers)
    rescue *RAISED => e
      raised(transport, topic, e)
    end

    # The transport's short name (:sysv, :direct, :test, ...; :deferred or
    # :outbox for an event held for its transaction's commit).
    def transport_name(transport)
      @names[transport.class] ||=
        if transport.respond_to?(:transport_name)
          transport.transport_name
        else
          transport.class.name.to_s.split("::").last.to_s.downcase.to_sym
        end
    end

    private

    # Whether anyone listens to "emit"; when nobody listens to any of our
    # three events, ShopifyEvents.emit stops calling us until that changes.
    def listening?
      listening = @listening
      return listening unless listening.nil?

      notifier = @notifications.notifier
      @listening = notifier.listening?(EMIT)
      ShopifyEvents.watched = @listening || notifier.listening?(DROP) || notifier.listening?(ERROR)
      @listening
    end

    # `args` are emit's (topic, payload, key, headers).
    def instrumented(transport, method, args)
      id = @notifications.instrument(EMIT, details(transport, args)) do |data|
        data[:event_id] = transport.public_send(method, *args)
      end
      id || dropped(transport, args)
    end

    def raised(transport, topic, error)
      if @notifications.notifier.listening?(ERROR)
        @notifications.instrument(ERROR, topic: topic, transport: transport_name(transport), error: error)
      end
      raise error
    end

    def dropped(transport, args)
      return nil unless @notifications.notifier.listening?(DROP)

      data = details(transport, args)
      data[:error] = transport.respond_to?(:last_error) ? transport.last_error : transport.native.last_error
      @notifications.instrument(DROP, data)
      nil
    end

    def details(transport, args)
      { topic: args.first, transport: transport_name(transport), bytes: Native.encode(*args).bytesize, event_id: nil }
    end
  end
end
