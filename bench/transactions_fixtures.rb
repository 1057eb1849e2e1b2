# frozen_string_literal: true

# What bench/transactions.rb sets up around ShopifyEvents: a thread holding
# a transaction, a traced request, the outbox variants.
module TransactionsBench
  # A thread holding a transaction open (on its own connection) while a
  # block runs.
  class TransactionHolder
    def initialize
      @requests = Queue.new
      @done = Queue.new
      @thread = Thread.new { serve }
    end

    def around
      @requests << :open
      @done.pop
      yield
    ensure
      @requests << :close
      @done.pop
    end

    def stop
      @requests << :stop
      @thread.join
    end

    private

    def serve
      ActiveRecord::Base.connection_pool.with_connection do
        while @requests.pop == :open
          ActiveRecord::Base.transaction do
            @done << :opened
            @requests.pop
          end
          @done << :closed
        end
      end
    end
  end

  # Request id and an OpenTelemetry span, as in a traced Rails request. The
  # OpenTelemetry API is not installable here: a stand-in of its documented
  # shape (the specs use the same).
  module Headers
    SpanContext = Struct.new(:hex_trace_id, :hex_span_id, :trace_flags, :tracestate) do
      def valid? = true
    end
    Flags = Struct.new(:sampled?)
    Tracestate = Struct.new(:text) do
      def empty? = text.empty?
      def to_s = text
    end
    CONTEXT = SpanContext.new("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", Flags.new(true),
                              Tracestate.new(""))
    SPAN = Struct.new(:context).new(CONTEXT)

    def self.enable(on)
      ShopifyEvents::RequestContext.installed = on
      Object.send(:remove_const, :OpenTelemetry) if defined?(::OpenTelemetry)
      return unless on

      trace = Module.new
      trace.define_singleton_method(:current_span) { SPAN }
      Object.const_set(:OpenTelemetry, Module.new).const_set(:Trace, trace)
    end

    # Runs the block as inside a request (RequestContext's middleware).
    def self.in_request(&block)
      result = nil
      ShopifyEvents::RequestContext.new(->(_env) { result = block.call })
                                   .call("action_dispatch.request_id" => "b3f2c1d0-5e1f-4a5a-9d7e-0c6f1e2d3a4b")
      result
    end
  end

  # Part 3's variants: `per` transactions of one event each.
  def outbox_variants(connection, per)
    {
      "INSERT of the row (floor)" => lambda {
        timed { per.times { ActiveRecord::Base.transaction { insert_row(connection, PAYLOAD) } } }
      },
      "emit(outbox: true)" => lambda {
        timed { per.times { ActiveRecord::Base.transaction { ShopifyEvents.emit(TOPIC, PAYLOAD, outbox: true) } } }
      },
      "emit, deferred, + INSERT of an order" => lambda {
        timed do
          per.times do
            ActiveRecord::Base.transaction do
              connection.execute("INSERT INTO orders (name) VALUES ('x')")
              ShopifyEvents.emit(TOPIC, PAYLOAD)
            end
          end
        end
      }
    }
  end

  # The INSERT emit(outbox: true) runs, alone: same SQL, same kind of row
  # (a unique id, an envelope encoded once, outside the timing).
  def insert_row(connection, payload)
    @envelope ||= ShopifyEvents::Native.encode_event(TOPIC, payload, nil, nil).last
    @row = (@row || 0) + 1
    id = format("00000000-0000-7000-8000-%012x", @row)
    sql = ShopifyEvents::Outbox.send(:insert_sql, connection)
    binds = [ActiveRecord::Relation::QueryAttribute.new("event_id", id, ActiveRecord::Type::String.new),
             ActiveRecord::Relation::QueryAttribute.new("envelope", @envelope, ActiveRecord::Type::Binary.new)]
    connection.exec_query(sql, "bench insert", binds, prepare: true)
  end
end
