# frozen_string_literal: true

require "rails/railtie"

module ShopifyEvents
  # Configures ShopifyEvents when a Rails app boots: the default transport
  # for Rails.env (test: test, development: log, production: sysv), then the
  # Rails.env section of config/shopify_events.yml (ERB allowed), then the
  # SHOPIFY_EVENTS_* environment variables, which win. Logs to Rails.logger.
  # `rails generate shopify_events:install` writes the YAML file.
  class Railtie < Rails::Railtie
    initializer "shopify_events.configure" do |app|
      ShopifyEvents.config = Configuration.for_rails(
        Rails.env, yaml_path: app.root.join("config", "shopify_events.yml").to_s, logger: Rails.logger
      )
    end

    generators do
      require "generators/shopify_events/install/install_generator"
    end
  end
end
