# frozen_string_literal: true

module ShopifyEvents
  # The spool's settings (sysv's overflow and the spool transport) and
  # max_event_bytes; their SHOPIFY_EVENTS_* variables are read with the
  # rest in Configuration::ENVIRONMENT.
  class Configuration
    DEFAULT_SPOOL_DIR = Native::DEFAULTS.fetch(:spool_dir)
    DEFAULT_SPOOL_SYNC = Native::DEFAULTS.fetch(:spool_sync).to_sym
    DEFAULT_MAX_EVENT_BYTES = Native::DEFAULTS.fetch(:max_event_bytes)
    # Words that turn the spool off (`spool_dir`).
    SPOOL_OFF = %w[off none false].freeze
    # The largest max_event_bytes a spool record can have (1 GiB).
    MAX_EVENT_BYTES_LIMIT = 1 << 30
    SPOOL_ENVIRONMENT = {
      "SHOPIFY_EVENTS_SPOOL_DIR" => :spool_dir=,
      "SHOPIFY_EVENTS_SPOOL_MAX_BYTES" => :spool_max_bytes=,
      "SHOPIFY_EVENTS_SPOOL_SYNC" => :spool_sync=,
      "SHOPIFY_EVENTS_MAX_EVENT_BYTES" => :max_event_bytes=
    }.freeze

    # sysv and spool: the spool directory, or nil when the spool is off.
    attr_reader :spool_dir
    # The bound of the spool directory's files in bytes, or nil for the
    # spool's default (a quarter of the filesystem, at most 64 GiB).
    attr_reader :spool_max_bytes
    # :page_cache, :always, or an Integer: msync every that many ms.
    attr_reader :spool_sync
    # The largest event envelope sysv and spool take, in bytes.
    attr_reader :max_event_bytes

    # An absolute path; nil, false or "off" turn the spool off (a full
    # queue then drops, and events above kernel.msgmax raise).
    def spool_dir=(value)
      text = value.to_s.strip
      if value.nil? || value == false || SPOOL_OFF.include?(text.downcase)
        @spool_dir = nil
        return
      end
      unless text.start_with?("/")
        raise ConfigurationError, "spool_dir #{value.inspect} (SHOPIFY_EVENTS_SPOOL_DIR) is not an absolute path: " \
                                  "use one like #{DEFAULT_SPOOL_DIR}, or \"off\" to turn the spool off"
      end
      @spool_dir = text
    end

    # Bytes (Integer) or a size like "8GiB"; nil for the default.
    def spool_max_bytes=(value)
      @spool_max_bytes = value.nil? ? nil : parse_size(value, "spool_max_bytes", "SHOPIFY_EVENTS_SPOOL_MAX_BYTES")
    end

    # :page_cache (the default: the kernel writes spooled events back, they
    # survive any process crash), :always (msync before each emit returns,
    # they survive a power loss), or an interval in milliseconds
    # ("interval:100" or 100: at most that much is lost to a power loss).
    def spool_sync=(value)
      @spool_sync =
        case value
        when Integer then value
        when /\A\s*interval:\s*(\d+)\s*(ms)?\s*\z/i then Integer(Regexp.last_match(1), 10)
        when /\A\s*(page_cache|always)\s*\z/i, :page_cache, :always then value.to_s.strip.downcase.to_sym
        end
      return if @spool_sync.is_a?(Symbol) || @spool_sync&.positive?

      raise ConfigurationError, "spool_sync #{value.inspect} (SHOPIFY_EVENTS_SPOOL_SYNC) is not valid: use " \
                                "page_cache, always, or interval:MS (e.g. interval:100)"
    end

    # Bytes (Integer) or a size like "1MiB", from 1 KiB to 1 GiB.
    def max_event_bytes=(value)
      bytes = parse_size(value, "max_event_bytes", "SHOPIFY_EVENTS_MAX_EVENT_BYTES")
      unless bytes.between?(1024, MAX_EVENT_BYTES_LIMIT)
        raise ConfigurationError, "max_event_bytes #{value.inspect} (SHOPIFY_EVENTS_MAX_EVENT_BYTES) is out of " \
                                  "range: use 1KiB to 1GiB, e.g. 1MiB (Kafka's default message.max.bytes)"
      end
      @max_event_bytes = bytes
    end

    # The spool settings the native transports take, or nil when the spool
    # is off.
    def spool_settings
      return nil unless @spool_dir

      { dir: @spool_dir, max_bytes: @spool_max_bytes, sync: @spool_sync, max_event_bytes: @max_event_bytes }
    end

    private

    def spool_defaults
      @spool_dir = DEFAULT_SPOOL_DIR
      @spool_max_bytes = nil
      @spool_sync = DEFAULT_SPOOL_SYNC
      @max_event_bytes = DEFAULT_MAX_EVENT_BYTES
    end

    def parse_size(value, setting, variable)
      return value if value.is_a?(Integer) && !value.negative?

      unless value.is_a?(String)
        raise ConfigurationError, "#{setting} #{value.inspect} (#{variable}) is not a size: use bytes or e.g. 512MiB"
      end

      Native.parse_size(value)
    rescue ConfigurationError => e
      raise ConfigurationError, "#{setting} (#{variable}): #{e.message}"
    end
  end
end
