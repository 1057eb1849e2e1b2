# frozen_string_literal: true

require "rails/railtie"

module ShopifyEvents
  # Configures ShopifyEvents when a Rails app boots: the default transport
  # for Rails.env (test: test, development: log, production: sysv), then the
  # Rails.env section of config/shopify_events.yml (ERB allowed), then the
  # SHOPIFY_EVENTS_* environment variables, which win. Logs to Rails.logger.
  # `rails generate shopify_events:install` writes the YAML file,
  # `rails generate shopify_events:outbox` the outbox table's migration.
  #
  # It also adds the request id header (RequestContext's middleware), and
  # once ActiveRecord loads, makes events follow its transactions and starts
  # the outbox sweeper lazily in each process (at its first request or job).
  class Railtie < Rails::Railtie
    initializer "shopify_events.configure" do |app|
      ShopifyEvents.config = Configuration.for_rails(
        Rails.env, yaml_path: app.root.join("config", "shopify_events.yml").to_s, logger: Rails.logger
      )
    end

    initializer "shopify_events.request_context" do |app|
      app.config.middleware.use(RequestContext)
      RequestContext.installed = true
    end

    initializer "shopify_events.active_record" do |app|
      ActiveSupport.on_load(:active_record) do
        ShopifyEvents::Transactions.install
        app.executor.to_run { ShopifyEvents::Outbox::SweeperThread.ensure_running }
      end
    end

    generators do
      require "generators/shopify_events/install/install_generator"
      require "generators/shopify_events/outbox/outbox_generator"
    end
  end
end
