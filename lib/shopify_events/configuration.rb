# frozen_string_literal: true

require "logger"

module ShopifyEvents
  # Every setting, with its default from SHOPIFY_EVENTS_* environment
  # variables. This is the one place the environment is read.
  class Configuration
    TRANSPORTS = %i[sysv test].freeze
    DEFAULT_TRANSPORT = :sysv
    # "SEV\0": documented in README.md; `shopify-events` uses the same default.
    DEFAULT_QUEUE_KEY = 0x5345_5600
    DEFAULT_QUEUE_PERMISSIONS = 0o660

    attr_reader :transport, :queue_key, :queue_permissions
    attr_writer :logger

    def self.from_env(env = ENV)
      new.tap do |config|
        config.transport = env["SHOPIFY_EVENTS_TRANSPORT"] if present?(env["SHOPIFY_EVENTS_TRANSPORT"])
        config.queue_key = env["SHOPIFY_EVENTS_QUEUE_KEY"] if present?(env["SHOPIFY_EVENTS_QUEUE_KEY"])
        if present?(env["SHOPIFY_EVENTS_QUEUE_PERMISSIONS"])
          config.queue_permissions = env["SHOPIFY_EVENTS_QUEUE_PERMISSIONS"]
        end
      end
    end

    def self.present?(value)
      !value.nil? && !value.strip.empty?
    end
    private_class_method :present?

    def initialize
      @transport = DEFAULT_TRANSPORT
      @queue_key = DEFAULT_QUEUE_KEY
      @queue_permissions = DEFAULT_QUEUE_PERMISSIONS
      @logger = nil
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
      @queue_key = parse_integer(value, "queue key", "SHOPIFY_EVENTS_QUEUE_KEY", "0x53455600") do |key|
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
