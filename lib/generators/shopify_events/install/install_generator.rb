# frozen_string_literal: true

require "rails/generators"

module ShopifyEvents
  module Generators
    # `rails generate shopify_events:install`: writes config/shopify_events.yml.
    class InstallGenerator < Rails::Generators::Base
      desc "Creates config/shopify_events.yml with the settings for each Rails environment."

      # Inline rather than a template file: the gem ships only lib/**/*.rb.
      CONFIG = <<~'YAML'
        # shopify_events settings per Rails environment (ERB allowed).
        # SHOPIFY_EVENTS_* environment variables override what is set here.
        #
        # transport: sysv (the host queue; a `shopify-events drain` forwards it to Kafka),
        #            socket (containers: a host proxy), direct (librdkafka in this process:
        #            events buffered in the process are lost if it dies), test, log.

        development:
          transport: log

        test:
          transport: test

        production:
          transport: sysv
          # queue_key: 0x53455600
          # For transport: direct
          # brokers: <%= ENV.fetch("KAFKA_BROKERS", "kafka-1:9092") %>
          # kafka:
          #   compression.type: zstd
          # flush_timeout: 5
          # direct_buffer: 10000
      YAML

      def create_config_file
        create_file "config/shopify_events.yml", CONFIG
      end
    end
  end
end
