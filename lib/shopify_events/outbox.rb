# frozen_string_literal: true

require "shopify_events/outbox/sweeper"
require "shopify_events/outbox/sweeper_thread"

module ShopifyEvents
  # The transactional outbox (`emit(..., outbox: true)` or `outbox_topics`):
  # inside the app's transaction, the encoded envelope is inserted into
  # `shopify_events_outbox`, so it commits or rolls back with the app's
  # data. Right after the commit the event is sent like any deferred event
  # and its row deleted (one DELETE per committed transaction); a row whose
  # process died between commit and send is re-sent by the Sweeper of a
  # live process, with the same event id.
  #
  # Table (`rails generate shopify_events:outbox`):
  #
  #   event_id   string(36), primary key: the event id as `emit` returns it.
  #              UUIDv7, so ordering by it orders by emit time, and the
  #              sweeper finds old rows by a range of the primary key.
  #   envelope   binary: the envelope bytes (docs/PROTOCOL.md), sent as they are.
  #   created_at datetime, set by the database: when the row was written.
  module Outbox
    TABLE = "shopify_events_outbox"

    @insert_sql = {}.compare_by_identity
    @ready = {}.compare_by_identity
    @lock = Mutex.new

    class << self
      # Inserts one row on `connection` (inside its open transaction).
      def insert(connection, id, envelope)
        ensure_table(connection)
        connection.exec_query(insert_sql(connection), "ShopifyEvents::Outbox Insert",
                              [bind("event_id", id, string_type), bind("envelope", envelope, binary_type)],
                              prepare: true)
        Transactions.counters[:outbox_written] += 1
        SweeperThread.ensure_running
      end

      # Up to `limit` [event_id, envelope] rows with event_id < `upper` (and
      # > `after`), in event id order, that is emit order.
      def rows_before(connection, upper, after:, limit:)
        column = connection.quote_column_name("event_id")
        range = "#{column} < #{connection.quote(upper)}"
        range += " AND #{column} > #{connection.quote(after)}" if after
        connection.select_all("SELECT #{column}, #{connection.quote_column_name("envelope")} FROM " \
                              "#{connection.quote_table_name(TABLE)} WHERE #{range} ORDER BY #{column} " \
                              "LIMIT #{Integer(limit)}", "ShopifyEvents::Outbox Sweep").cast_values
      end

      # How many rows have event_id < `upper`.
      def count_before(connection, upper)
        connection.select_value("SELECT COUNT(*) FROM #{connection.quote_table_name(TABLE)} WHERE " \
                                "#{connection.quote_column_name("event_id")} < #{connection.quote(upper)}",
                                "ShopifyEvents::Outbox Sweep").to_i
      end

      # Deletes one row; true if this call deleted it (inside a transaction,
      # that also locks it against another sweeper until the commit).
      def delete_row(connection, id)
        connection.exec_delete("DELETE FROM #{connection.quote_table_name(TABLE)} WHERE " \
                               "#{connection.quote_column_name("event_id")} = #{connection.quote(id)}",
                               "ShopifyEvents::Outbox Claim", []) == 1
      end

      # Deletes the rows of events sent after their commit. A failure is
      # logged, not raised: the sweeper re-sends what stays (same ids).
      def delete(connection, ids)
        quoted = ids.map { |id| connection.quote(id) }.join(", ")
        connection.exec_delete("DELETE FROM #{connection.quote_table_name(TABLE)} WHERE " \
                               "#{connection.quote_column_name("event_id")} IN (#{quoted})",
                               "ShopifyEvents::Outbox Delete", [])
        Transactions.counters[:outbox_deleted] += ids.size
      rescue StandardError => e
        ShopifyEvents.config.logger.warn("shopify_events: sent #{ids.size} outbox events but could not delete " \
                                         "their rows (#{e.class}: #{e.message}); the sweeper will send them " \
                                         "again with the same ids")
      end

      # Raises a ConfigurationError naming the generator when the table is
      # missing, before any SQL could fail inside the app's transaction.
      def ensure_table(connection)
        return if @ready[connection.pool]

        unless connection.data_source_exists?(TABLE)
          raise ConfigurationError, "the outbox table #{TABLE} does not exist: run `rails generate " \
                                    "shopify_events:outbox` and `rails db:migrate` (emit with outbox: true)"
        end

        @lock.synchronize { @ready[connection.pool] = true }
      end

      # Re-sends rows a crash left behind, once, in this thread; see Sweeper#sweep.
      def sweep(**options)
        Sweeper.new(ShopifyEvents.config).sweep(**options)
      end

      private

      # The INSERT with the adapter's bind placeholders ($1 or ?), also when
      # prepared statements are off (exec_query binds parameters either way).
      def insert_sql(connection)
        @insert_sql[connection.class] || @lock.synchronize do
          @insert_sql[connection.class] = connection.visitor.compile(insert_ast, bind_collector).first.freeze
        end
      end

      def insert_ast
        table = ::Arel::Table.new(TABLE)
        manager = ::Arel::InsertManager.new
        manager.into(table)
        manager.insert(%i[event_id envelope].map { |column| [table[column], ::Arel::Nodes::BindParam.new(nil)] })
        manager.ast
      end

      def bind_collector
        ::Arel::Collectors::Composite.new(::Arel::Collectors::SQLString.new, ::Arel::Collectors::Bind.new)
      end

      def bind(name, value, type)
        ::ActiveRecord::Relation::QueryAttribute.new(name, value, type)
      end

      def string_type
        @string_type ||= ::ActiveRecord::Type::String.new
      end

      def binary_type
        @binary_type ||= ::ActiveRecord::Type::Binary.new
      end
    end
  end
end
