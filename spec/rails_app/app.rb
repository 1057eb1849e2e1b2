# frozen_string_literal: true

# A one-file Rails 6.1 app that boots with the gem and emits from a
# controller action, inside an ActiveRecord transaction. Specs run it in
# child processes (spec/shopify_events/rails_app_spec.rb): its Minitest and
# RSpec tests in `test` mode (transactional tests), and under Puma in cluster
# mode in `production` mode (sysv, through the drain to Kafka).
#
# Environment: RAILS_ENV, RAILS_APP_LOG (log file; default stdout),
# RAILS_APP_QUEUE_KEY (read by config/shopify_events.yml), DATABASE_URL
# (default: a SQLite file in the system's temporary directory),
# SHOPIFY_EVENTS_*.

require "logger"
require "tmpdir"
rails_env = ENV.fetch("RAILS_ENV", "development")
ENV["DATABASE_URL"] ||= "sqlite3:#{File.join(Dir.tmpdir, "shopify_events_rails_app_#{rails_env}.sqlite3")}"
require "rails"
require "action_controller/railtie"
require "active_record/railtie"

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

class Order < ActiveRecord::Base
end

# Creates an order and emits orders.created in one transaction: the event is
# sent when the transaction commits. `fail=1` rolls the transaction back after
# the emit (nothing is sent); `outbox=1` emits through the outbox table.
class OrdersController < ActionController::API
  def create
    id = Integer(params.require(:id))
    event_id = nil
    committed = Order.transaction do
      Order.create!(name: "order-#{id}")
      event_id = ShopifyEvents.emit("orders.created", { id: id, pid: Process.pid },
                                    key: "shop-1", outbox: params[:outbox] == "1")
      raise ActiveRecord::Rollback if params[:fail] == "1"

      true
    end
    render json: { event_id: event_id, committed: committed == true, transport: ShopifyEvents.config.transport },
           status: :created
  end

  def stats
    render json: ShopifyEvents.stats.merge(ShopifyEvents::Transactions.stats).merge(
      pid: Process.pid, sweeper: ShopifyEvents::Outbox::SweeperThread.thread&.alive? || false
    )
  end
end

RailsApp.initialize!
RailsApp.routes.draw do
  post "/orders" => "orders#create"
  get "/stats" => "orders#stats"
end

# The schema: orders, and the outbox table as `rails generate
# shopify_events:outbox` writes its migration.
ActiveRecord::Base.connection_pool.with_connection do |connection|
  connection.create_table(:orders) { |t| t.string :name } unless connection.table_exists?(:orders)
  unless connection.table_exists?(:shopify_events_outbox)
    require "generators/shopify_events/outbox/outbox_generator"
    migration = Module.new
    migration.module_eval(format(ShopifyEvents::Generators::OutboxGenerator::MIGRATION,
                                 version: ActiveRecord::Migration.current_version))
    migration::CreateShopifyEventsOutbox.new.tap { |m| m.verbose = false }.exec_migration(connection, :up)
  end
end
