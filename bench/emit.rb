# frozen_string_literal: true

# Emit cost benchmark: median ns per call of
#   - the raw floor: a bare msgsnd loop of the same envelope bytes, in Rust,
#   - ShopifyEvents.emit with a 200-byte String payload,
#   - ShopifyEvents.emit with a small Hash (JSON-encoded in Rust),
#   - JSON.generate of that Hash + ShopifyEvents.emit of the String,
# all in this one process, interleaved batch by batch so drift hits each alike.
#
#   ruby -Ilib bench/emit.rb [--rounds N] [--batch N]
#
# Each batch sends into an empty queue that is large enough to hold it (the
# bench raises kernel.msgmnb when run as root, and restores it); outside the
# timed region the queue is then removed and created again, and one untimed
# emit lets the transport find the new queue before the next batch.

require "optparse"
require "json"
require "etc"
require "shopify_events"

options = { rounds: 201, batch: 2000 }
OptionParser.new do |o|
  o.on("--rounds N", Integer, "timed batches per variant (default 201)") { |v| options[:rounds] = v }
  o.on("--batch N", Integer, "calls per batch (default 2000)") { |v| options[:batch] = v }
end.parse!

# Holds kernel.msgmnb high enough for one batch while the bench runs.
class QueueRoom
  PATH = "/proc/sys/kernel/msgmnb"

  def self.with(bytes)
    old = Integer(File.read(PATH))
    File.write(PATH, bytes.to_s) if bytes > old
    yield
  rescue Errno::EACCES, Errno::EPERM
    warn "not root: kernel.msgmnb stays #{old}; use --batch small enough for it"
    yield
  ensure
    File.write(PATH, old.to_s) if old && Process.uid.zero?
  end
end

def median(values)
  sorted = values.sort
  sorted[sorted.size / 2]
end

def machine
  cpu = File.read("/proc/cpuinfo")[/model name\s*:\s*(.+)/, 1]
  "#{cpu}, #{Etc.nprocessors} cores, Linux #{`uname -r`.strip}, #{RUBY_DESCRIPTION}"
end

TOPIC = "bench.events"
STRING = ("a".."z").cycle.first(200).join.freeze
HASH = { user_id: 12_345, action: "checkout", shop: "example.myshopify.com", amount: 42.5, tags: %w[a b c] }.freeze
batch = options[:batch]
key = 0x7EBE_0000 | (Process.pid & 0xFFFF)

variants = {
  "raw msgsnd floor (Rust loop)" => lambda {
    envelope = ShopifyEvents::Native.encode(TOPIC, STRING, nil, nil)
    -> { ShopifyEvents::Native::Bench.msgsnd_floor(key, envelope, batch) }
  },
  "emit(200-byte String)" => lambda {
    lambda {
      i = 0
      t = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
      while i < batch
        ShopifyEvents.emit(TOPIC, STRING)
        i += 1
      end
      Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond) - t
    }
  },
  "emit(Hash)" => lambda {
    lambda {
      i = 0
      t = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
      while i < batch
        ShopifyEvents.emit(TOPIC, HASH)
        i += 1
      end
      Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond) - t
    }
  },
  "JSON.generate + emit(String)" => lambda {
    lambda {
      i = 0
      t = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
      while i < batch
        ShopifyEvents.emit(TOPIC, JSON.generate(HASH))
        i += 1
      end
      Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond) - t
    }
  },
  "emit(the Hash's JSON, prebuilt)" => lambda {
    json = JSON.generate(HASH)
    lambda {
      i = 0
      t = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
      while i < batch
        ShopifyEvents.emit(TOPIC, json)
        i += 1
      end
      Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond) - t
    }
  },
  "JSON.generate alone" => lambda {
    lambda {
      i = 0
      t = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
      while i < batch
        JSON.generate(HASH)
        i += 1
      end
      Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond) - t
    }
  },
  "empty Ruby loop (reference)" => lambda {
    lambda {
      i = 0
      t = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
      i += 1 while i < batch
      Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond) - t
    }
  }
}

QueueRoom.with(batch * 1024) do
  queue = ShopifyEvents::Native::Queue.create(key, 0o600)
  # Empties the queue between batches: a new queue under the same key (the
  # extension has no call that empties one), found by one untimed emit.
  empty = lambda do
    queue.remove
    queue = ShopifyEvents::Native::Queue.create(key, 0o600)
    ShopifyEvents.emit(TOPIC, STRING)
    queue.try_receive
  end
  begin
    ShopifyEvents.configure do |c|
      c.transport = :sysv
      c.queue_key = key
    end
    runs = variants.transform_values(&:call)
    samples = runs.transform_values { [] }
    runs.each_value do |run| # warm up
      3.times do
        run.call
        empty.call
      end
    end
    options[:rounds].times do
      runs.each do |name, run|
        samples[name] << run.call.fdiv(batch)
        empty.call
      end
    end
    dropped = ShopifyEvents.stats[:dropped]
    raise "the bench dropped #{dropped} events: the queue was too small for a batch" unless dropped.zero?

    medians = samples.transform_values { |s| median(s) }
    floor = medians.fetch("raw msgsnd floor (Rust loop)")
    json_then_emit = medians.fetch("JSON.generate + emit(String)")
    puts "machine: #{machine}"
    puts "method: #{options[:rounds]} interleaved batches of #{batch} calls per variant; median ns per call"
    puts format("%-32s %10s", "variant", "ns/op")
    medians.each { |name, ns| puts format("%-32s %10.1f", name, ns) }
    puts format("emit(String) / raw floor            = %.2fx (target <= 2.0x)",
                medians["emit(200-byte String)"] / floor)
    puts format("emit(Hash) / (JSON.generate + emit) = %.2fx (target <= 0.4x)", medians["emit(Hash)"] / json_then_emit)
    prebuilt = medians.fetch("emit(the Hash's JSON, prebuilt)")
    puts format("  best possible with a free encoder = %.2fx (emit of the prebuilt JSON / same baseline)",
                prebuilt / json_then_emit)
    puts format("  JSON in Rust vs JSON.generate     = %.2fx ((emit(Hash) - emit(prebuilt JSON)) / JSON.generate)",
                (medians["emit(Hash)"] - prebuilt) / medians.fetch("JSON.generate alone"))
  ensure
    queue.remove
  end
end
