# frozen_string_literal: true

# Socket transport benchmark, against the StatsD convention of a UDP send of
# the same bytes from Ruby, measured in the same process, batches interleaved:
#   - emit cost: ns per `ShopifyEvents.emit` (200-byte String) with the
#     socket transport, pipelined (emit only buffers; the IO thread sends);
#   - UDP baseline: ns per `UDPSocket#send` of that event's envelope bytes
#     to a local socket;
#   - throughput: events/s through one connection, emit until flush returns
#     (every event acknowledged by the proxy, i.e. in the host queue).
#
#   rake compile && ruby -Ilib bench/socket.rb [--rounds N] [--batch N] [--events N] [--unix]
#
# Starts lib/shopify_events/shopify-events proxy on a free loopback port (or
# a Unix socket) and a fresh queue (raising kernel.msgmnb as root, restored
# after); the queue is emptied between batches outside the timed region, by
# removing it and creating it again (the proxy finds the new one by key).

require "optparse"
require "socket"
require "tmpdir"
require "etc"
require "shopify_events"

options = { rounds: 101, batch: 2000, events: 200_000, unix: false }
OptionParser.new do |o|
  o.on("--rounds N", Integer, "timed batches per variant (default 101)") { |v| options[:rounds] = v }
  o.on("--batch N", Integer, "calls per batch (default 2000)") { |v| options[:batch] = v }
  o.on("--events N", Integer, "events per throughput run (default 200000)") { |v| options[:events] = v }
  o.on("--unix", "connect over a Unix socket instead of TCP") { options[:unix] = true }
end.parse!

def now_ns = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)

def median(values) = values.sort[values.size / 2]

TOPIC = "bench.events"
STRING = ("a".."z").cycle.first(200).join.freeze
MSGMNB = "/proc/sys/kernel/msgmnb"
key = 0x7EBF_0000 | (Process.pid & 0xFFFF)
dir = Dir.mktmpdir("shopify-events-bench")
port = TCPServer.new("127.0.0.1", 0).then { |s| s.addr[1].tap { s.close } }
address = options[:unix] ? "unix://#{dir}/proxy.sock" : "tcp://127.0.0.1:#{port}"
old_msgmnb = Integer(File.read(MSGMNB))
File.write(MSGMNB, (512 << 20).to_s) if Process.uid.zero? && old_msgmnb < (512 << 20)
queue = ShopifyEvents::Native::Queue.create(key, 0o600)
binary = File.expand_path("../lib/shopify_events/shopify-events", __dir__)
proxy = Process.spawn(binary, "proxy", "--no-spool", "--listen", address, "--queue-key", key.to_s, "--run-dir", dir,
                      err: File::NULL)
empty = lambda do
  queue.remove
  queue = ShopifyEvents::Native::Queue.create(key, 0o600)
end
begin
  sleep 0.05 until options[:unix] ? File.socket?("#{dir}/proxy.sock") : (TCPSocket.new("127.0.0.1", port).close || true)
rescue Errno::ECONNREFUSED
  retry
end

begin
  ShopifyEvents.configure do |c|
    c.transport = :socket
    c.proxy = address
  end
  envelope = ShopifyEvents::Native.encode(TOPIC, STRING, nil, nil)
  sink = UDPSocket.new.tap { |s| s.bind("127.0.0.1", 0) }
  udp = UDPSocket.new.tap { |s| s.connect("127.0.0.1", sink.addr[1]) }
  batch = options[:batch]
  variants = {
    "socket emit(200-byte String), pipelined" => lambda {
      t = now_ns
      i = 0
      while i < batch
        ShopifyEvents.emit(TOPIC, STRING)
        i += 1
      end
      elapsed = now_ns - t
      ShopifyEvents.flush(10) || raise("flush timed out")
      elapsed
    },
    "UDP send of the same envelope bytes" => lambda {
      t = now_ns
      i = 0
      while i < batch
        udp.send(envelope, 0)
        i += 1
      end
      now_ns - t
    }
  }
  samples = variants.transform_values { [] }
  3.times { variants.each_value(&:call) && empty.call }
  options[:rounds].times do
    variants.each do |name, run|
      samples[name] << run.call.fdiv(batch)
      empty.call
    end
  end

  rates = 5.times.map do
    t = now_ns
    # Sustained: when the buffer of unacknowledged events is full, wait for
    # acks (the proxy's pace) and retry instead of dropping.
    options[:events].times do
      ShopifyEvents.emit!(TOPIC, STRING)
    rescue ShopifyEvents::QueueFull
      ShopifyEvents.flush(0.001)
      retry
    end
    ShopifyEvents.flush(60) || raise("flush timed out")
    rate = options[:events] / ((now_ns - t) / 1e9)
    empty.call
    rate
  end
  stats = ShopifyEvents.stats
  raise "dropped #{stats[:dropped]} events" unless stats[:dropped].zero?

  medians = samples.transform_values { |s| median(s) }
  socket_ns = medians.values.first
  udp_ns = medians.values.last
  cpu = File.read("/proc/cpuinfo")[/model name\s*:\s*(.+)/, 1]
  puts "machine: #{cpu}, #{Etc.nprocessors} cores, Linux #{`uname -r`.strip}, #{RUBY_DESCRIPTION}"
  puts "proxy: #{address}; envelope #{envelope.bytesize} bytes; #{options[:rounds]} interleaved batches of #{batch}"
  medians.each { |name, ns| puts format("%-42s %10.1f ns/op", name, ns) }
  puts format("socket emit / UDP send = %.2fx (target <= 0.5x)", socket_ns / udp_ns)
  puts format("throughput, one connection: median %.0f events/s (min %.0f, max %.0f) over 5 runs of %d " \
              "(target >= 200000)", median(rates), rates.min, rates.max, options[:events])
ensure
  Process.kill("TERM", proxy)
  Process.wait(proxy)
  queue.remove
  File.write(MSGMNB, old_msgmnb.to_s) if Process.uid.zero?
  FileUtils.rm_rf(dir)
end
