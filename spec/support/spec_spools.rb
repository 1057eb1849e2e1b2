# frozen_string_literal: true

require "fileutils"
require "tmpdir"

# Spools for specs: a fresh spool directory per example (removed after it),
# the transports configured on them, and the events read back with
# ShopifyEvents::Native::SpoolReader, as the drain reads them.
module SpecSpools
  # What a spec reads the events of one transport back from: the queue
  # (and, with a spool, the spool after it) or the spool alone.
  class Sink
    attr_reader :queue, :spool_dir, :key

    def initialize(key:, queue: nil, spool_dir: nil)
      @key = key
      @queue = queue
      @spool_dir = spool_dir
      @reader = nil
    end

    # Every event emitted since the last call, decoded: the queue's, then
    # the spool's, each in order. Spooled ones are acknowledged, as the
    # drain would once Kafka took them.
    def events
      queued = []
      queued << ShopifyEvents::Event.decode(@queue.try_receive) while @queue&.stat&.fetch(:depth)&.positive?
      queued + spool_envelopes.map { |bytes| ShopifyEvents::Event.decode(bytes) }
    end

    # The spooled envelopes readable now, as binary Strings.
    def spool_envelopes(ack: true)
      return [] unless @spool_dir

      reader.read(ack)
    end

    def reader
      @reader ||= ShopifyEvents::Native::SpoolReader.new(@spool_dir, @key)
    end
  end

  # A fresh directory, removed after the example.
  def spec_spool_dir
    dir = Dir.mktmpdir("shopify_events-spool-")
    (@spec_spool_dirs ||= []) << dir
    dir
  end

  def remove_spec_spools
    Array(@spec_spool_dirs).each { |dir| FileUtils.rm_rf(dir) }
  end

  # Configures `transport` (:sysv, with a spool unless `spool: false`, or
  # :spool) on a fresh queue key and spool directory (or `dir`); returns the
  # Sink. `settings` are further settings (spool_max_bytes, ...).
  def use_transport(transport, spool: true, dir: nil, logger: Logger.new(StringIO.new), **settings)
    key = spec_queue_key
    dir = spool ? dir || spec_spool_dir : nil
    queue = transport == :sysv ? ShopifyEvents::Native::Queue.open_or_create(key, 0o600) : nil
    ShopifyEvents.configure do |c|
      c.transport = transport
      c.queue_key = key
      c.spool_dir = dir
      c.logger = logger
      settings.each { |name, value| c.public_send("#{name}=", value) }
    end
    Sink.new(key: key, queue: queue, spool_dir: dir)
  end

  # Decoded events spooled in `dir` for `key`, each writer's in order.
  def spooled_events(dir, key, ack: false)
    ShopifyEvents::Native::SpoolReader.new(dir, key).read(ack).map { |bytes| ShopifyEvents::Event.decode(bytes) }
  end
end

RSpec.configure do |config|
  config.include SpecSpools
  config.after { remove_spec_spools }
end
