# frozen_string_literal: true

require "rails/generators"
require "rails/generators/active_record/migration"

module ShopifyEvents
  module Generators
    # `rails generate shopify_events:outbox`: writes the migration that
    # creates the outbox table (ShopifyEvents::Outbox documents its columns).
    class OutboxGenerator < Rails::Generators::Base
      include ::ActiveRecord::Generators::Migration

      desc "Creates a migration for the shopify_events_outbox table (events emitted with outbox: true)."

      # Inline rather than a template file: the gem ships only lib/**/*.rb.
      MIGRATION = <<~'RUBY'
        # frozen_string_literal: true

        # The shopify_events outbox: an event emitted with `outbox: true` (or on
        # a topic in `outbox_topics`) inside a transaction is written here in
        # that transaction, sent right after the commit and deleted. Rows a
        # crashed process left behind are re-sent by the gem's sweeper with the
        # same event id. See the gem's README, "Rails".
        class CreateShopifyEventsOutbox < ActiveRecord::Migration[%<version>s]
          def change
            create_table :shopify_events_outbox, id: false do |t|
              # The event id (UUIDv7, ordered by emit time): the sweeper scans by it.
              t.string :event_id, limit: 36, null: false, primary_key: true
              # The encoded event (envelope bytes), sent as it is.
              t.binary :envelope, null: false
              t.datetime :created_at, null: false, default: -> { "CURRENT_TIMESTAMP" }
            end
          end
        end
      RUBY

      # A second run finds the migration (Rails' create_migration: "identical").
      def create_migration_file
        destination = File.join(db_migrate_path, "create_shopify_events_outbox.rb")
        set_migration_assigns!(destination)
        create_migration(File.join(File.dirname(destination), "%migration_number%_create_shopify_events_outbox.rb"),
                         format(MIGRATION, version: ::ActiveRecord::Migration.current_version))
      end
    end
  end
end
