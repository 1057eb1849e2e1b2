# frozen_string_literal: true

# Emit cost benchmark: median ns per call, in one process, interleaved batch
# by batch so drift hits each variant alike:
#
#   - the raw floor: a bare msgsnd loop of the same envelope bytes, in Rust,
#   - ShopifyEvents.emit with a 200-byte String payload (sysv, healthy queue),
#   - ShopifyEvents.emit with a small Hash (JSON-encoded in Rust),
#   - JSON.generate of that Hash + ShopifyEvents.emit of the String,
#   - the socket transport's emit (unless --no-socket: a `shopify-events
#     proxy` on loopback feeding a queue of its own; emit only buffers, the
#     client's IO thread sends and the batch is flushed outside the timer)
#     and the direct transport's emit (unless --no-direct: librdkafka's
#     in-process mock cluster, `test.mock.num.brokers`; flushed outside
#     the timer), both through ShopifyEvents.emit,
#   - the spool (unless --no-spool): sysv while it spools (queue full), the
#     spool transport, both native emitters called directly (no Ruby method
#     layers), SpoolWriter::append in a Rust loop, the spool transport with
#     segments created inline (no preparing thread), and with spool_sync
#     interval:10 and always. Spool variants also report the mean over all
#     batches (a segment is created once per many batches, which the median
#     leaves out) and the process's CPU per event, all its threads included
#     (the preparing thread's work shows there, not in the emitting time).
#
#   ruby -Ilib bench/emit.rb [--rounds N] [--batch N] [--spool-dir DIR] [--no-spool]
#                            [--no-socket] [--no-direct] [--guard FILE]
#
# With --guard (what `rake bench` passes), the ratios to the floor are
# compared with the reference in FILE (bench/emit_reference.json): a ratio
# above its reference by more than the run-to-run spread recorded there
# (docs/BENCHMARKS.md, "Guard") is flagged and the script exits 1.
#
# Each sysv batch sends into an empty queue that is large enough to hold it
# (the bench raises kernel.msgmnb when run as root, and restores it), then the
# queue is emptied outside the timed region. Spool batches are acknowledged
# after their timer stopped, as a drain would (so segments are reclaimed),
# except the sysv-while-spooling one, which must stay spooling.

require "optparse"
require "json"
require "etc"
require "tmpdir"
require "fileutils"
require "socket"
require "shopify_events"

options = { rounds: 201, batch: 2000, spool: true, spool_dir: Dir.tmpdir, socket: true, direct: true, guard: nil }
OptionParser.new do |o|
  o.on("--rounds N", Integer, "timed batches per variant (default 201)") { |v| options[:rounds] = v }
  o.on("--batch N", Integer, "calls per batch (default 2000)") { |v| options[:batch] = v }
  o.on("--spool-dir DIR", "where the spool variants write (default #{Dir.tmpdir})") { |v| options[:spool_dir] = v }
  o.on("--no-spool", "without the spool variants") { options[:spool] = false }
  o.on("--no-socket", "without the socket transport (no proxy started)") { options[:socket] = false }
  o.on("--no-direct", "without the direct transport") { options[:direct] = false }
  o.on("--guard FILE", "flag ratios above FILE's reference by more than its spread; exit 1") do |v|
    options[:guard] = v
  end
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

def machine(spool_dir)
  cpu = File.read("/proc/cpuinfo")[/model name\s*:\s*(.+)/, 1]
  fs = `findmnt -no FSTYPE -T #{spool_dir} 2>/dev/null`.strip
  "#{cpu}, #{Etc.nprocessors} cores, Linux #{`uname -r`.strip}, #{RUBY_DESCRIPTION}; spool on #{fs}"
end

def now
  Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
end

def cpu_now
  Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID, :nanosecond)
end

TOPIC = "bench.events"
STRING = ("a".."z").cycle.first(200).join.freeze
HASH = { user_id: 12_345, action: "checkout", shop: "example.myshopify.com", amount: 42.5, tags: %w[a b c] }.freeze

# One variant: `run.call(n)` returns the elapsed ns of n calls; `batch` is
# its n; `settle` runs after each batch, outside the timer.
Variant = Struct.new(:run, :batch, :settle, :spool, keyword_init: true)

# The loops are written out (no block call per iteration) so that every
# variant pays the same loop overhead as the empty-loop reference.
def module_emit(payload)
  lambda do |n|
    i = 0
    t = now
    while i < n
      ShopifyEvents.emit(TOPIC, payload)
      i += 1
    end
    now - t
  end
end

def native_emit(native)
  lambda do |n|
    i = 0
    t = now
    while i < n
      native.emit(TOPIC, STRING, nil, nil)
      i += 1
    end
    now - t
  end
end

# ShopifyEvents.emit through `transport` (swapped in outside the timer).
def through(transport, payload = STRING)
  loop = module_emit(payload)
  ->(n) { ShopifyEvents.with_transport(transport) { loop.call(n) } }
end

batch = options[:batch]
key = 0x7EBE_0000 | (Process.pid & 0xFFFF)
full_key = 0x7EBF_0000 | (Process.pid & 0xFFFF)
bench_queue = nil # created below
purge = lambda {
  bench_queue ||= ShopifyEvents::Native::Queue.open(key)
  nil while bench_queue.try_receive
}

variants = {
  "raw msgsnd floor (Rust loop)" => Variant.new(
    run: lambda { |n|
      ShopifyEvents::Native::Bench.msgsnd_floor(key, ShopifyEvents::Native.encode(TOPIC, STRING, nil, nil), n)
    }, settle: purge
  ),
  "emit(200-byte String)" => Variant.new(run: module_emit(STRING), settle: purge),
  "sysv: Native::SysvEmitter#emit direct" => Variant.new(
    run: native_emit(ShopifyEvents::Native::SysvEmitter.new(key, 0o600, nil)), settle: purge
  ),
  "emit(Hash)" => Variant.new(run: module_emit(HASH), settle: purge),
  "JSON.generate + emit(String)" => Variant.new(
    run: lambda { |n|
      i = 0
      t = now
      while i < n
        ShopifyEvents.emit(TOPIC, JSON.generate(HASH))
        i += 1
      end
      now - t
    }, settle: purge
  ),
  "emit(the Hash's JSON, prebuilt)" => Variant.new(run: module_emit(JSON.generate(HASH)), settle: purge),
  "JSON.generate alone" => Variant.new(
    run: lambda { |n|
      i = 0
      t = now
      while i < n
        JSON.generate(HASH)
        i += 1
      end
      now - t
    }
  ),
  "empty Ruby loop (reference)" => Variant.new(
    run: lambda { |n|
      i = 0
      t = now
      i += 1 while i < n
      now - t
    }
  )
}

# A configuration of its own spool directory under `root`; `native` are
# spool settings only benchmarks pass (prepare_ahead: false).
def spool_config(root, key, native: {}, **settings)
  config = ShopifyEvents::Configuration.new
  config.queue_key = key
  config.spool_dir = Dir.mktmpdir("spool-", root)
  settings.each { |name, value| config.public_send("#{name}=", value) }
  plain = config.spool_settings
  config.define_singleton_method(:spool_settings) { plain.merge(native) }
  config
end

# Acknowledges what was spooled in `dir`, as a drain would.
def drain(dir, key)
  reader = nil
  -> { (reader ||= ShopifyEvents::Native::SpoolReader.new(dir, key)).ack_all }
end

# The spool variants, each on a directory of its own under `root`; and the
# sysv transport that spools (its queue, `full_key`, is full).
def spool_variants(root, key, full_key, batch)
  spooling = ShopifyEvents::Transports.build(spool_config(root, full_key, transport: :sysv))
  spool = ShopifyEvents::Transports.build(plain = spool_config(root, key, transport: :spool))
  settle = drain(plain.spool_dir, key)
  variants = {
    "sysv emit while spooling (queue full)" => Variant.new(run: through(spooling), spool: true),
    "spool: emit(200-byte String)" => Variant.new(run: through(spool), settle: settle, spool: true),
    "spool: Native::SpoolEmitter#emit direct" => Variant.new(run: native_emit(spool.native), settle: settle,
                                                             spool: true)
  }
  variants.merge!(spool_floor(root, key), spool_settings_variants(root, key, batch))
  [variants, spooling]
end

# SpoolWriter::append of the same envelope in a Rust loop.
def spool_floor(root, key)
  dir = Dir.mktmpdir("spool-", root)
  envelope = ShopifyEvents::Native.encode(TOPIC, STRING, nil, nil)
  { "spool: SpoolWriter::append floor (Rust loop)" => Variant.new(
    run: ->(n) { ShopifyEvents::Native::Bench.spool_append_floor(dir, key, envelope, n) },
    settle: drain(dir, key), spool: true
  ) }
end

# The spool transport without its preparing thread, and with each sync policy.
def spool_settings_variants(root, key, batch)
  {
    "spool: emit, segments created inline" => [{ native: { prepare_ahead: false } }, batch],
    "spool: emit, spool_sync interval:10" => [{ spool_sync: 10 }, batch],
    "spool: emit, spool_sync always" => [{ spool_sync: :always }, [batch / 20, 1].max]
  }.to_h do |name, (settings, n)|
    config = spool_config(root, key, transport: :spool, **settings)
    transport = ShopifyEvents::Transports.build(config)
    [name, Variant.new(run: through(transport), settle: drain(config.spool_dir, key), spool: true, batch: n)]
  end
end

# A `shopify-events proxy` (the gem's binary) on a free loopback port,
# feeding the queue at `key`: [its address, its pid].
def start_proxy(key, run_dir)
  port = TCPServer.new("127.0.0.1", 0).then { |s| s.addr[1].tap { s.close } }
  binary = File.expand_path("../lib/shopify_events/shopify-events", __dir__)
  pid = Process.spawn(binary, "proxy", "--no-spool", "--listen", "tcp://127.0.0.1:#{port}", "--queue-key",
                      key.to_s, "--run-dir", run_dir, err: File::NULL)
  wait_for_port(port)
  ["tcp://127.0.0.1:#{port}", pid]
end

# The socket transport through a proxy of its own: [variant, proxy pid, queue].
def socket_variant(key, run_dir)
  queue = ShopifyEvents::Native::Queue.create(key, 0o600)
  address, proxy = start_proxy(key, run_dir)
  config = ShopifyEvents::Configuration.new
  config.transport = :socket
  config.proxy = address
  transport = ShopifyEvents::Transports.build(config)
  settle = lambda {
    transport.flush(10) || raise("socket: flush timed out")
    nil while queue.try_receive
  }
  [Variant.new(run: through(transport), settle: settle), proxy, queue]
end

def wait_for_port(port, deadline = now + 10_000_000_000)
  TCPSocket.new("127.0.0.1", port).close
rescue Errno::ECONNREFUSED
  raise "the proxy did not listen on #{port}" if now > deadline

  sleep 0.02
  retry
end

# The direct transport, producing to librdkafka's in-process mock cluster.
def direct_variant(batch)
  config = ShopifyEvents::Configuration.new
  config.transport = :direct
  config.brokers = "127.0.0.1:9" # replaced by the mock cluster's
  config.kafka = { "test.mock.num.brokers" => 1, "linger.ms" => 5 }
  config.direct_buffer = batch * 4
  config.logger = Logger.new(File::NULL) # librdkafka's notice that the mock cluster replaced the brokers
  transport = ShopifyEvents::Transports.build(config)
  settle = -> { transport.flush(10) || raise("direct: flush timed out") }
  [Variant.new(run: through(transport), settle: settle), transport]
end

# Ratios to the floor that the guard checks (docs/BENCHMARKS.md, "Guard").
GUARDED = {
  "emit(200-byte String)" => "emit(String) / floor",
  "emit(Hash)" => "emit(Hash) / floor",
  "sysv: Native::SysvEmitter#emit direct" => "native sysv emit / floor",
  "socket: emit(200-byte String)" => "socket emit(String) / floor",
  "direct: emit(200-byte String)" => "direct emit(String) / floor",
  "spool: emit(200-byte String)" => "spool emit(String) / floor"
}.freeze

# Compares the measured ratios with the reference file; true if none is
# above its reference by more than the spread.
def guard(path, medians, floor)
  reference = JSON.parse(File.read(path))
  limit = 1 + reference.fetch("spread")
  puts "guard: #{path} (reference #{reference.fetch("measured")}; flagged above reference x #{limit})"
  ratios = reference.fetch("ratios")
  GUARDED.map do |variant, label|
    next true unless ratios[label] && medians[variant]

    guard_line(label, medians[variant] / floor, ratios[label], limit)
  end.all?
end

def guard_line(label, ratio, expected, limit)
  ok = ratio <= expected * limit
  puts format("  %-30s %6.3fx  reference %6.3fx  %s", label, ratio, expected, ok ? "ok" : "REGRESSION")
  ok
end

# Fills the queue at `key` so that sysv spools from the first emit on.
def fill(queue)
  queue.try_send("x" * 1000) while queue.stat[:bytes] + 1000 <= queue.stat[:capacity]
rescue ShopifyEvents::QueueFull
  nil
end

socket_key = 0x7EC0_0000 | (Process.pid & 0xFFFF)
guard_ok = true
QueueRoom.with(batch * 1024) do
  queue = ShopifyEvents::Native::Queue.create(key, 0o600)
  full = ShopifyEvents::Native::Queue.create(full_key, 0o600) if options[:spool]
  spool_root = Dir.mktmpdir("shopify_events-bench-", options[:spool_dir]) if options[:spool]
  run_dir = Dir.mktmpdir("shopify_events-bench-run-")
  proxy = socket_queue = direct = nil
  begin
    if options[:socket]
      variants["socket: emit(200-byte String)"], proxy, socket_queue = socket_variant(socket_key, run_dir)
    end
    variants["direct: emit(200-byte String)"], direct = direct_variant(batch) if options[:direct]
    ShopifyEvents.configure do |c|
      c.transport = :sysv
      c.queue_key = key
      c.spool_dir = spool_root if spool_root
    end
    if options[:spool]
      full.capacity = 16_384
      fill(full)
      extra, spooling = spool_variants(spool_root, key, full_key, batch)
      variants.merge!(extra)
    end
    samples = variants.transform_values { [] }
    cpu = variants.transform_values { [] }
    variants.each_value do |v| # warm up
      3.times do
        v.run.call(v.batch || batch)
        v.settle&.call
      end
    end
    options[:rounds].times do
      variants.each do |name, v|
        n = v.batch || batch
        c = cpu_now
        samples[name] << v.run.call(n).fdiv(n)
        cpu[name] << (cpu_now - c).fdiv(n)
        v.settle&.call
      end
    end
    dropped = ShopifyEvents.stats[:dropped]
    raise "the bench dropped #{dropped} events: the queue was too small for a batch" unless dropped.zero?
    raise "direct dropped events: #{direct.stats}" if direct && direct.stats[:dropped].to_i.positive?
    raise "sysv stopped spooling: #{spooling.stats}" if spooling && spooling.stats[:spooling] != 1

    medians = samples.transform_values { |s| median(s) }
    means = samples.transform_values { |s| s.sum / s.size }
    cpus = cpu.transform_values { |s| s.sum / s.size }
    floor = medians.fetch("raw msgsnd floor (Rust loop)")
    json_then_emit = medians.fetch("JSON.generate + emit(String)")
    puts "machine: #{machine(options[:spool_dir])}"
    puts "method: #{options[:rounds]} interleaved batches of #{batch} calls per variant " \
         "(spool_sync always: #{[batch / 20, 1].max}); median ns per call; spool variants also the mean, " \
         "and the mean process CPU time per call (all threads)"
    puts format("%-46s %10s %9s %10s %10s", "variant", "ns/op", "x floor", "mean ns/op", "CPU ns/op")
    medians.each do |name, ns|
      mean, cpu_ns = variants[name].spool ? [format("%.1f", means[name]), format("%.1f", cpus[name])] : ["", ""]
      puts format("%-46s %10.1f %9.3f %10s %10s", name, ns, ns / floor, mean, cpu_ns)
    end
    puts format("emit(String) / raw floor            = %.2fx (target <= 2.0x)",
                medians["emit(200-byte String)"] / floor)
    puts format("emit(Hash) / (JSON.generate + emit) = %.2fx (target <= 0.4x)", medians["emit(Hash)"] / json_then_emit)
    prebuilt = medians.fetch("emit(the Hash's JSON, prebuilt)")
    puts format("  best possible with a free encoder = %.2fx (emit of the prebuilt JSON / same baseline)",
                prebuilt / json_then_emit)
    puts format("  JSON in Rust vs JSON.generate     = %.2fx ((emit(Hash) - emit(prebuilt JSON)) / JSON.generate)",
                (medians["emit(Hash)"] - prebuilt) / medians.fetch("JSON.generate alone"))
    if options[:spool]
      puts format("spool emit(String) / msgsnd floor  = %.2fx (target <= 0.3x)",
                  medians["spool: emit(200-byte String)"] / floor)
      puts format("  native spool emit / msgsnd floor = %.2fx (the Ruby method layers left out)",
                  medians["spool: Native::SpoolEmitter#emit direct"] / floor)
      puts format("sysv while spooling / queue path   = %.2fx", medians["sysv emit while spooling (queue full)"] /
                                                              medians["emit(200-byte String)"])
    end
    guard_ok = guard(options[:guard], medians, floor) if options[:guard]
  ensure
    direct&.close
    if proxy
      Process.kill("TERM", proxy)
      Process.wait(proxy)
    end
    socket_queue&.remove
    FileUtils.rm_rf(run_dir)
    queue.remove
    full&.remove
    FileUtils.rm_rf(spool_root) if spool_root
  end
end
exit(1) unless guard_ok
