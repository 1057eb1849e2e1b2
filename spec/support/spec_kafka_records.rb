# frozen_string_literal: true

require "socket"
require "timeout"

# Reads a topic back from a Kafka-protocol broker (the spec Tansu) with its
# headers and timestamps, which `tansu cat consume` does not show: a minimal
# Fetch v4 client (Kafka protocol, big-endian, record batches of magic 2).
# It reads uncompressed batches only: specs start the drain with
# `--kafka compression.type=none` (its default is lz4). Specs only.
class SpecKafkaRecords
  # One record: its partition, offset, timestamp (ms), key, value and
  # headers (a Hash of String to String; the drain puts `event_id` there).
  Record = Struct.new(:partition, :offset, :timestamp_ms, :key, :value, :headers, keyword_init: true) # rubocop:disable Lint/StructNewOverride

  FETCH = 1
  FETCH_VERSION = 4

  def initialize(bootstrap)
    host, port = bootstrap.split(":")
    @host = host
    @port = Integer(port)
    @correlation = 0
  end

  # Every record of `topic` in partitions 0...partitions, read until each
  # partition's high watermark.
  def all(topic, partitions: 3)
    TCPSocket.open(@host, @port) do |socket|
      (0...partitions).flat_map { |partition| read_partition(socket, topic, partition) }
    end
  end

  # Reads until `count` records arrived or `timeout` seconds passed.
  def wait_for(topic, count:, partitions: 3, timeout: 30)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    loop do
      records = all(topic, partitions: partitions)
      return records if records.size >= count || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.2
    end
  end

  private

  def read_partition(socket, topic, partition)
    records = []
    offset = 0
    loop do
      batch, high_watermark = fetch(socket, topic, partition, offset)
      records.concat(batch)
      offset = batch.last.offset + 1 unless batch.empty?
      return records if offset >= high_watermark || batch.empty?
    end
  end

  def fetch(socket, topic, partition, offset)
    body = [-1, 100, 1, 8 << 20, 0].pack("l>l>l>l>c") +
           [1].pack("l>") + string(topic) + [1, partition, offset, 4 << 20].pack("l>l>q>l>")
    response = request(socket, body)
    parse_fetch(response, topic, partition)
  end

  def request(socket, body)
    @correlation += 1
    header = [FETCH, FETCH_VERSION, @correlation].pack("s>s>l>") + string("shopify-events-spec")
    message = header + body
    socket.write([message.bytesize].pack("l>") + message)
    Timeout.timeout(10) do
      size = socket.read(4).unpack1("l>")
      response = socket.read(size)
      correlation = response.unpack1("l>")
      raise "Kafka response #{correlation} does not answer request #{@correlation}" unless correlation == @correlation

      Reader.new(response.byteslice(4..))
    end
  end

  def string(text)
    [text.bytesize].pack("s>") + text.b
  end

  def parse_fetch(reader, topic, partition)
    reader.int32 # throttle time
    reader.int32.times do
      name = reader.string
      reader.int32.times do
        index = reader.int32
        error = reader.int16
        high_watermark = reader.int64
        reader.int64 # last stable offset
        aborted = reader.int32
        aborted.times { reader.take(16) } if aborted.positive? # producer id, first offset
        bytes = reader.bytes
        next unless name == topic && index == partition

        raise "Kafka fetch #{topic}/#{partition} failed with error code #{error}" unless error.zero?

        return [Reader.new(bytes || "".b).record_batches(partition), high_watermark]
      end
    end
    raise "Kafka fetch response has no #{topic}/#{partition}"
  end
end
