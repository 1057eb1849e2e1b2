# frozen_string_literal: true

# SpecKafkaRecords' decoder of the Kafka wire format: big-endian fields,
# zigzag varints, record batches (its own file; support files load in any
# order and only use each other at run time).
class SpecKafkaRecords
  # Big-endian fields and zigzag varints from a binary String.
  class Reader
    def initialize(bytes)
      @bytes = bytes.b
      @at = 0
    end

    def remaining = @bytes.bytesize - @at

    def take(count)
      raise "Kafka response truncated: wanted #{count} bytes, #{remaining} left" if count > remaining

      @bytes.byteslice(@at, count).tap { @at += count }
    end

    def int8 = take(1).unpack1("c")
    def int16 = take(2).unpack1("s>")
    def int32 = take(4).unpack1("l>")
    def int64 = take(8).unpack1("q>")

    def string
      length = int16
      length.negative? ? nil : take(length)
    end

    def bytes
      length = int32
      length.negative? ? nil : take(length)
    end

    def varint
      value = 0
      shift = 0
      loop do
        byte = take(1).ord
        value |= (byte & 0x7F) << shift
        break if byte < 0x80

        shift += 7
      end
      (value >> 1) ^ -(value & 1)
    end

    def varbytes
      length = varint
      length.negative? ? nil : take(length)
    end

    # Record batches (magic 2, uncompressed) of one partition's fetch response.
    def record_batches(partition)
      records = []
      while remaining >= 12
        base_offset = int64
        length = int32
        break if length > remaining # a partial batch at the end of the response

        batch = Reader.new(take(length))
        batch.int32 # partition leader epoch
        magic = batch.int8
        raise "record batch of magic #{magic}: only magic 2 is read" unless magic == 2

        batch.int32 # crc
        attributes = batch.int16
        raise "compressed record batch (attributes #{attributes}): produce uncompressed" unless (attributes & 7).zero?

        batch.int32 # last offset delta
        base_timestamp = batch.int64
        batch.take(8 + 8 + 2 + 4) # max timestamp, producer id and epoch, base sequence
        batch.int32.times { records << batch.record(partition, base_offset, base_timestamp) }
      end
      records
    end

    def record(partition, base_offset, base_timestamp)
      varint # length
      int8 # attributes
      timestamp_delta = varint
      offset_delta = varint
      key = varbytes
      value = varbytes
      headers = Array.new(varint) { [varbytes, varbytes] }.to_h
      Record.new(partition: partition, offset: base_offset + offset_delta,
                 timestamp_ms: base_timestamp + timestamp_delta, key: key, value: value, headers: headers)
    end
  end
end
