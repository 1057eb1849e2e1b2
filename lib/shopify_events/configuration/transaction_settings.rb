# frozen_string_literal: true

require "set"

module ShopifyEvents
  # Settings of events that follow database transactions (deferred emit, the
  # outbox and its sweeper) and of the headers added to every event. Their
  # SHOPIFY_EVENTS_* variables are listed in Configuration::ENVIRONMENT.
  class Configuration
    AFTER_COMMIT_MODES = %i[defer immediate].freeze
    DEFAULT_AFTER_COMMIT = :defer
    DEFAULT_TRANSACTION_CONNECTION = "ActiveRecord::Base"
    DEFAULT_OUTBOX_SWEEP_INTERVAL = 10.0
    DEFAULT_OUTBOX_SWEEP_AFTER = 30.0
    DEFAULT_OUTBOX_SWEEP_RATE = 500
    DEFAULT_OUTBOX_MAX_AGE = 7 * 24 * 3600.0
    DEFAULT_REQUEST_ID_HEADER = "request_id"

    # :defer (default): inside an ActiveRecord transaction, `emit` encodes at
    # once and sends when the transaction commits (nothing on rollback).
    # :immediate: send at once, as outside a transaction.
    attr_reader :after_commit
    # The ActiveRecord class (or its name) whose connection's transaction
    # deferred events follow; "ActiveRecord::Base" unless the app names one
    # of its databases' abstract classes.
    attr_reader :transaction_connection
    # Topics whose events go through the outbox when emitted in a transaction.
    attr_reader :outbox_topics
    # Seconds between two sweeps of the outbox table (0: no sweeper).
    attr_reader :outbox_sweep_interval
    # Rows younger than this many seconds are left to the process that
    # committed them (it sends and deletes them right after the commit).
    attr_reader :outbox_sweep_after
    # At most this many rows re-sent per second by one process's sweeper.
    attr_reader :outbox_sweep_rate
    # Rows older than this many seconds are not re-sent by the sweeper; it
    # logs them instead (ShopifyEvents::Outbox.sweep(max_age: nil) sends them).
    attr_reader :outbox_max_age
    # Headers added to every event: a Hash, or a callable returning one,
    # evaluated at each emit. Explicit headers win.
    attr_reader :default_headers
    # Header carrying the current Rails request id (nil: none).
    attr_reader :request_id_header
    # Whether to add W3C traceparent/tracestate while an OpenTelemetry span is current.
    attr_reader :trace_context

    def after_commit=(value)
      mode = value.to_s.strip.downcase.to_sym
      unless AFTER_COMMIT_MODES.include?(mode)
        raise ConfigurationError, "after_commit #{value.inspect} (SHOPIFY_EVENTS_AFTER_COMMIT) is not valid: " \
                                  "use defer (send when the transaction commits) or immediate"
      end
      @after_commit = mode
    end

    # An ActiveRecord class, or its name (resolved at the first emit in a transaction).
    def transaction_connection=(value)
      unless value.is_a?(Module) || (value.is_a?(String) && value.match?(/\A(::)?[A-Z]\w*(::[A-Z]\w*)*\z/))
        raise ConfigurationError, "transaction_connection #{value.inspect} is not an ActiveRecord class or " \
                                  "its name: use e.g. \"ActiveRecord::Base\" or \"AnimalsRecord\""
      end
      @transaction_connection = value
    end

    # An Array of topic names, or one String of names separated by commas.
    def outbox_topics=(value)
      names = value.is_a?(String) ? value.split(",") : Array(value)
      @outbox_topics = names.map { |name| name.to_s.strip }.reject(&:empty?).to_set.freeze
    end

    def outbox_sweep_interval=(value)
      @outbox_sweep_interval = seconds(value, "outbox_sweep_interval (SHOPIFY_EVENTS_OUTBOX_SWEEP_INTERVAL)")
    end

    def outbox_sweep_after=(value)
      @outbox_sweep_after = seconds(value, "outbox_sweep_after")
    end

    def outbox_max_age=(value)
      @outbox_max_age = value.nil? ? nil : seconds(value, "outbox_max_age")
    end

    def outbox_sweep_rate=(value)
      rate = value.is_a?(Integer) ? value : Integer(value.to_s.strip, 10, exception: false)
      unless rate&.positive?
        raise ConfigurationError, "outbox_sweep_rate #{value.inspect} is not valid: use a number of rows per " \
                                  "second above 0, e.g. #{DEFAULT_OUTBOX_SWEEP_RATE}"
      end
      @outbox_sweep_rate = rate
    end

    # A Hash of header names to values, a callable returning one, or nil.
    def default_headers=(value)
      unless value.nil? || value.is_a?(Hash) || value.respond_to?(:call)
        raise ConfigurationError, "default_headers must be a Hash or respond to #call (a lambda returning a " \
                                  "Hash), got #{value.inspect}"
      end
      @default_headers = if value.is_a?(Hash)
                           value.transform_keys { |k| k.is_a?(Symbol) ? k.name : k }.freeze
                         else
                           value
                         end
    end

    def request_id_header=(value)
      @request_id_header = value.nil? || value.to_s.empty? ? nil : value.to_s.dup.freeze
    end

    def trace_context=(value)
      @trace_context = ![false, "false", "0", "no", "off"].include?(value.is_a?(String) ? value.strip.downcase : value)
    end

    private

    def reset_transaction_settings
      @after_commit = DEFAULT_AFTER_COMMIT
      @transaction_connection = DEFAULT_TRANSACTION_CONNECTION
      @outbox_topics = Set.new.freeze
      @outbox_sweep_interval = DEFAULT_OUTBOX_SWEEP_INTERVAL
      @outbox_sweep_after = DEFAULT_OUTBOX_SWEEP_AFTER
      @outbox_sweep_rate = DEFAULT_OUTBOX_SWEEP_RATE
      @outbox_max_age = DEFAULT_OUTBOX_MAX_AGE
      @default_headers = nil
      @request_id_header = DEFAULT_REQUEST_ID_HEADER
      @trace_context = true
    end

    def seconds(value, what)
      number = Float(value, exception: false) || Float::NAN
      return number if number.finite? && number >= 0

      raise ConfigurationError, "#{what} #{value.inspect} is not a number of seconds >= 0"
    end
  end
end
