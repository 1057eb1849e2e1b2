# frozen_string_literal: true

# A one-file Rails 6.1 app that boots with the gem and emits from a
# controller action. Specs run it in child processes (spec/shopify_events/
# rails_app_spec.rb): its Minitest and RSpec tests in `test` mode, and under
# Puma in cluster mode in `production` mode (sysv, through the drain to Kafka).
#
# Environment: RAILS_ENV, RAILS_APP_LOG (log file; default stdout),
# RAILS_APP_QUEUE_KEY (read by config/shopify_events.yml), SHOPIFY_EVENTS_*.

require "logger"
require "rails"
require "action_controller/railtie"

$LOAD_PATH.unshift(File.expand_path("../../lib", __dir__))
require "shopify_events"
# Needed only because a spec helper may have loaded shopify_events before
# Rails; with Bundler.require the railtie loads by itself.
require "shopify_events/railtie"

class RailsApp < Rails::Application
  config.root = __dir__
  config.eager_load = false
  config.logger = ActiveSupport::Logger.new(ENV.fetch("RAILS_APP_LOG", $stdout))
  config.log_level = :info
  config.secret_key_base = "spec-only-#{"0" * 64}"
  config.hosts.clear
  config.active_support.deprecation = :stderr
end

# Emits one event per request.
class OrdersController < ActionController::API
  def create
    id = ShopifyEvents.emit("orders.created", { id: Integer(params.require(:id)), pid: Process.pid },
                            key: "shop-1", headers: { "request_id" => request.request_id })
    render json: { event_id: id, transport: ShopifyEvents.config.transport }, status: :created
  end

  def stats
    render json: ShopifyEvents.stats
  end
end

RailsApp.initialize!
RailsApp.routes.draw do
  post "/orders" => "orders#create"
  get "/stats" => "orders#stats"
end
