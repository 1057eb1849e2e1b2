# frozen_string_literal: true

require "tmpdir"

# ActiveRecord on real databases for specs: a SQLite file or a fresh
# PostgreSQL database (SpecPostgres), with an `orders` table and the outbox
# table created by the migration `rails generate shopify_events:outbox`
# writes. ActiveRecord is loaded only by the specs that use it.
module SpecActiveRecord
  ADAPTERS = {
    sqlite: -> {},
    postgresql: -> { SpecPostgres.unavailable_reason }
  }.freeze

  class << self
    def load
      require "active_record"
      require "shopify_events/active_record"
      require "generators/shopify_events/outbox/outbox_generator"
      define_models
    end

    # Why `adapter` cannot be used here, or nil.
    def unavailable_reason(adapter)
      ADAPTERS.fetch(adapter).call
    end

    # Settings of a fresh database of `adapter` (:sqlite, :postgresql) with
    # the spec schema; SQLite files go to `dir`.
    def create_database(adapter, dir:, name: "spec")
      config = if adapter == :sqlite
                 { adapter: "sqlite3", database: File.join(dir, "#{name}.sqlite3"), timeout: 10_000 }
               else
                 SpecPostgres.instance.create_database(name)
               end
      with_connection(config) { |connection| create_schema(connection) }
      config
    end

    # The same settings as a DATABASE_URL for child processes.
    def url(config)
      return "sqlite3:#{config[:database]}?timeout=#{config[:timeout]}" if config[:adapter] == "sqlite3"

      SpecPostgres.instance.url(config[:database])
    end

    def create_schema(connection)
      connection.create_table(:orders, force: true) { |t| t.string :name }
      migration = format(ShopifyEvents::Generators::OutboxGenerator::MIGRATION,
                         version: ActiveRecord::Migration.current_version)
      namespace = Module.new
      namespace.module_eval(migration)
      namespace::CreateShopifyEventsOutbox.new.tap { |m| m.verbose = false }.exec_migration(connection, :up)
    end

    def with_connection(config, &block)
      pool = Class.new(ActiveRecord::Base) do
        self.abstract_class = true
        def self.name = "SpecSchemaRecord"
      end
      pool.establish_connection(config)
      pool.connection_pool.with_connection(&block)
    ensure
      pool&.remove_connection
    end

    private

    def define_models
      return if defined?(::SpecOrder)

      Object.const_set(:SpecOrder, Class.new(ActiveRecord::Base) { self.table_name = "orders" })
      Object.const_set(:SpecOtherRecord, Class.new(ActiveRecord::Base) { self.abstract_class = true })
      Object.const_set(:SpecOtherOrder, Class.new(SpecOtherRecord) { self.table_name = "orders" })
    end
  end

  # Example helpers.

  # Keeps this process from starting an outbox sweeper thread.
  def no_sweeper_thread
    ShopifyEvents.config.outbox_sweep_interval = 0
  end

  def outbox_rows(connection = ActiveRecord::Base.connection)
    connection.select_all("SELECT event_id, envelope FROM shopify_events_outbox ORDER BY event_id").cast_values
  end

  def outbox_count(connection = ActiveRecord::Base.connection)
    connection.select_value("SELECT COUNT(*) FROM shopify_events_outbox").to_i
  end
end

RSpec.configure do |config|
  # Writing an outbox row starts this process's sweeper thread; in specs it
  # would sweep other examples' rows. Specs that write rows turn it off
  # (SpecActiveRecord#no_sweeper_thread) and call Outbox.sweep or run the
  # thread in child processes; this stops one an example started anyway.
  config.after { ShopifyEvents::Outbox::SweeperThread.stop }
end
