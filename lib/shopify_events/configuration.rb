# frozen_string_literal: true

require "logger"
require "shopify_events/configuration/rails_settings"
require "shopify_events/configuration/spool_settings"
require "shopify_events/configuration/transaction_settings"

module ShopifyEvents
  # Every setting, with its default from SHOPIFY_EVENTS_* environment
  # variables. This is the one place the environment is read (settings of
  # transactions and headers: configuration/transaction_settings.rb; of the
  # spool: configuration/spool_settings.rb).
  class Configuration # rubocop:disable Metrics/ClassLength -- ENVIRONMENT lists every variable in one place
    TRANSPORTS = %i[sysv spool socket direct test log].freeze
    DEFAULT_TRANSPORT = :sysv
    # The rest come from the core (crates/core/src/defaults.rs), which the
    # drain, the proxy and `shopify-events` use too.
    DEFAULT_QUEUE_KEY = Native::DEFAULTS.fetch(:queue_key)
    DEFAULT_QUEUE_PERMISSIONS = Native::DEFAULTS.fetch(:queue_permissions)
    DEFAULT_FLUSH_TIMEOUT = Native::DEFAULTS.fetch(:flush_timeout)
    DEFAULT_DIRECT_BUFFER = Native::DEFAULTS.fetch(:direct_buffer)

    attr_reader :transport, :queue_key, :queue_permissions, :flush_timeout, :direct_buffer
    # socket transport: the host proxy's address, "tcp://host:port" or "unix:///path".
    attr_accessor :proxy
    # socket transport: shared secret the proxy may require in its handshake.
    attr_accessor :proxy_token
    # direct transport: Kafka bootstrap servers ("host:port,host:port").
    attr_accessor :brokers
    # direct transport: librdkafka settings passed unchanged ({"compression.type" => "zstd"}).
    attr_accessor :kafka
    attr_writer :logger

    # The environment variables read, and the setting each one sets.
    ENVIRONMENT = {
      "SHOPIFY_EVENTS_TRANSPORT" => :transport=,
      "SHOPIFY_EVENTS_QUEUE_KEY" => :queue_key=,
      "SHOPIFY_EVENTS_QUEUE_PERMISSIONS" => :queue_permissions=,
      "SHOPIFY_EVENTS_PROXY" => :proxy=,
      "SHOPIFY_EVENTS_PROXY_TOKEN" => :proxy_token=,
      "SHOPIFY_EVENTS_BROKERS" => :brokers=,
      "SHOPIFY_EVENTS_FLUSH_TIMEOUT" => :flush_timeout=,
      "SHOPIFY_EVENTS_DIRECT_BUFFER" => :direct_buffer=,
      "SHOPIFY_EVENTS_AFTER_COMMIT" => :after_commit=,
      "SHOPIFY_EVENTS_OUTBOX_TOPICS" => :outbox_topics=,
      "SHOPIFY_EVENTS_OUTBOX_SWEEP_INTERVAL" => :outbox_sweep_interval=
    }.merge(SPOOL_ENVIRONMENT).freeze

    def self.from_env(env = ENV)
      new.apply_env(env)
    end

    # Sets every setting whose SHOPIFY_EVENTS_* variable is present in `env`.
    def apply_env(env = ENV)
      ENVIRONMENT.each do |variable, setter|
        value = env[variable]
        public_send(setter, value) unless value.nil? || value.strip.empty?
      end
      self
    end

    def initialize
      @transport = DEFAULT_TRANSPORT
      @queue_key = DEFAULT_QUEUE_KEY
      @queue_permissions = DEFAULT_QUEUE_PERMISSIONS
      @flush_timeout = DEFAULT_FLUSH_TIMEOUT
      @proxy = nil
      @proxy_token = nil
      @brokers = nil
      @kafka = {}
      @direct_buffer = DEFAULT_DIRECT_BUFFER
      spool_defaults
      @logger = nil
      reset_transaction_settings
    end

    def transport=(value)
      name = value.to_s.strip.downcase.to_sym
      unless TRANSPORTS.include?(name)
        raise ConfigurationError, "unknown transport #{value.inspect} (SHOPIFY_EVENTS_TRANSPORT): " \
                                  "use one of #{TRANSPORTS.join(", ")}"
      end
      @transport = name
    end

    # Accepts an Integer, or a String in decimal or 0x-prefixed hex.
    def queue_key=(value)
      example = format("%#x", DEFAULT_QUEUE_KEY)
      @queue_key = parse_integer(value, "queue key", "SHOPIFY_EVENTS_QUEUE_KEY", example) do |key|
        key.between?(1, 0xFFFF_FFFF)
      end
    end

    # Accepts an Integer (0o660) or an octal String ("0660", "660").
    def queue_permissions=(value)
      mode = value.is_a?(String) && value.strip.match?(/\A0?[0-7]{3}\z/) ? value.strip.to_i(8) : value
      unless mode.is_a?(Integer) && mode.between?(0, 0o777)
        raise ConfigurationError, "queue permissions #{value.inspect} (SHOPIFY_EVENTS_QUEUE_PERMISSIONS) " \
                                  "are not a file mode: use octal like 0660"
      end
      @queue_permissions = mode
    end

    # Seconds `ShopifyEvents.flush` waits by default, and the bound of the
    # flush at process exit (transports that buffer: socket, direct).
    def flush_timeout=(value)
      seconds = Float(value, exception: false) || Float::NAN
      unless seconds.finite? && seconds >= 0
        raise ConfigurationError, "flush timeout #{value.inspect} (SHOPIFY_EVENTS_FLUSH_TIMEOUT) " \
                                  "is not a number of seconds >= 0"
      end
      @flush_timeout = seconds
    end

    # direct transport: events buffered in the process before `emit` drops
    # (and `emit!` raises BufferFull).
    def direct_buffer=(value)
      count = value.is_a?(Integer) ? value : Integer(value.to_s.strip, 10, exception: false)
      unless count&.between?(1, 10_000_000)
        raise ConfigurationError, "direct buffer #{value.inspect} (SHOPIFY_EVENTS_DIRECT_BUFFER) is not valid: " \
                                  "use a number of events from 1 to 10000000, e.g. 10000"
      end
      @direct_buffer = count
    end

    def logger
      @logger ||= Logger.new($stderr, progname: "shopify_events")
    end

    private

    def parse_integer(value, what, variable, example)
      number =
        case value
        when Integer then value
        when /\A\s*0[xX]\h+\s*\z/ then value.strip.to_i(16)
        when /\A\s*\d+\s*\z/ then value.strip.to_i(10)
        end
      return number if number && yield(number)

      raise ConfigurationError, "#{what} #{value.inspect} (#{variable}) is not valid: " \
                                "use a decimal number or 0x-prefixed hex from 1 to 0xFFFFFFFF, e.g. #{example}"
    end
  end
end
