# frozen_string_literal: true

require "erb"
require "yaml"

module ShopifyEvents
  # Loading settings from a Rails app's config/shopify_events.yml.
  class Configuration
    # Defaults by Rails environment; any other environment gets `sysv`.
    RAILS_TRANSPORTS = { "test" => :test, "development" => :log, "production" => :sysv }.freeze

    # Settings a YAML file may set (each has a writer on Configuration).
    FILE_SETTINGS = %w[transport queue_key queue_permissions proxy proxy_token brokers kafka flush_timeout
                       direct_buffer after_commit transaction_connection outbox_topics outbox_sweep_interval
                       outbox_sweep_after outbox_sweep_rate outbox_max_age default_headers request_id_header
                       trace_context spool_dir spool_max_bytes spool_sync max_event_bytes].freeze

    # The configuration of a Rails app: the default transport for
    # `rails_env`, then the `rails_env` section of `yaml_path` (ERB first; the
    # file is optional), then SHOPIFY_EVENTS_* variables (the environment wins).
    def self.for_rails(rails_env, yaml_path: nil, env: ENV, logger: nil)
      config = new
      config.transport = RAILS_TRANSPORTS.fetch(rails_env.to_s, DEFAULT_TRANSPORT)
      config.load_file(yaml_path, rails_env) if yaml_path && File.exist?(yaml_path)
      config.logger = logger if logger
      config.apply_env(env)
    end

    # Applies the `section` of a YAML file (rendered with ERB first).
    def load_file(path, section)
      data = YAML.safe_load(ERB.new(File.read(path)).result, aliases: true) || {}
      unless data.is_a?(Hash)
        raise ConfigurationError, "#{path} must map Rails environments to settings, got #{data.class}"
      end

      update(data.fetch(section.to_s, nil) || {}, source: "#{path} (#{section})")
    rescue Psych::Exception => e
      raise ConfigurationError, "cannot read #{path}: #{e.message}"
    end

    # Applies a Hash of settings named as in FILE_SETTINGS; `source` names
    # where they came from in error messages.
    def update(settings, source: "settings")
      unless settings.is_a?(Hash)
        raise ConfigurationError, "#{source} must be a mapping of settings, got #{settings.inspect}"
      end

      settings.each do |name, value|
        unless FILE_SETTINGS.include?(name.to_s)
          raise ConfigurationError, "unknown setting #{name.inspect} in #{source}: use #{FILE_SETTINGS.join(", ")}"
        end

        if name.to_s == "kafka" && !value.is_a?(Hash)
          raise ConfigurationError, "kafka in #{source} must be a mapping of librdkafka settings, got #{value.inspect}"
        end

        public_send("#{name}=", value)
      end
      self
    end
  end
end
