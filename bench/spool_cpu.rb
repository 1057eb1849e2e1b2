# frozen_string_literal: true

# CPU per event of the spool transport, all of it: the emitting thread and
# the thread that creates segments ahead, against segments created inline
# by the emit that needs them. Each run is a fresh process that emits N
# events of 200 bytes through ShopifyEvents.emit (:spool) into a fresh
# directory, nothing acknowledging them (no reader's CPU in the process),
# and reports wall time, the emitting thread's CPU and the whole process's
# CPU (/proc/self/task/*/stat), per event. Runs alternate between the two
# ways (ABAB...), and the medians are printed.
#
#   ruby -Ilib bench/spool_cpu.rb [--events N] [--runs R] [--dir DIR]
#
# The kernel's write-back of the dirty pages (flusher threads, not this
# process) is not in these numbers: `bench/spool.sh --part pages` measures
# it per page.

require "optparse"
require "json"
require "rbconfig"
require "tmpdir"
require "fileutils"

options = { events: 1_000_000, runs: 5, dir: Dir.tmpdir }
OptionParser.new do |o|
  o.on("--events N", Integer, "events per run (default 1,000,000)") { |v| options[:events] = v }
  o.on("--runs R", Integer, "runs of each way (default 5)") { |v| options[:runs] = v }
  o.on("--dir DIR", "where the spool directories go (default #{Dir.tmpdir})") { |v| options[:dir] = v }
  o.on("--child MODE") { |v| options[:child] = v }
end.parse!

TICK = 1e9 / 100 # /proc stat times are in clock ticks (USER_HZ, 100 here)

def cpu_ns(stat_path)
  fields = File.read(stat_path).split(") ").last.split
  (Integer(fields[11]) + Integer(fields[12])) * TICK # utime + stime
end

def threads_cpu
  Dir["/proc/self/task/*/stat"].to_h { |path| [path[%r{task/(\d+)/}, 1], cpu_ns(path)] }
end

if (mode = options[:child])
  require "shopify_events"
  dir = Dir.mktmpdir("spool-cpu-", options[:dir])
  begin
    config = ShopifyEvents::Configuration.new
    config.transport = :spool
    config.queue_key = 0x7EC0_0000 | (Process.pid & 0xFFFF)
    config.spool_dir = dir
    settings = config.spool_settings.merge(prepare_ahead: mode == "prepared")
    config.define_singleton_method(:spool_settings) { settings } # prepare_ahead is no setting: for benchmarks
    transport = ShopifyEvents::Transports.build(config)
    string = ("a".."z").cycle.first(200).join.freeze
    main = File.basename(File.readlink("/proc/thread-self"))
    ShopifyEvents.with_transport(transport) do
      10_000.times { ShopifyEvents.emit("bench.events", string) } # the first segments, the thread started
      before = threads_cpu
      t = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
      i = 0
      while i < options[:events]
        ShopifyEvents.emit("bench.events", string)
        i += 1
      end
      wall = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond) - t
      sleep 0.2 # a creation the thread was in the middle of
      after = threads_cpu
      spent = after.to_h { |tid, ns| [tid, ns - before.fetch(tid, 0)] }
      n = options[:events].to_f
      puts JSON.generate(wall: wall / n, emit_thread: spent.fetch(main) / n, process: spent.values.sum / n,
                         segments: transport.stats[:segments], dropped: transport.stats[:dropped])
    end
  ensure
    FileUtils.rm_rf(dir)
  end
  exit
end

def median(values)
  sorted = values.sort
  sorted[sorted.size / 2]
end

results = { "prepared" => [], "inline" => [] }
options[:runs].times do
  results.each_key do |way|
    out = IO.popen([RbConfig.ruby, *$LOAD_PATH.first(1).flat_map { |p| ["-I", p] }, __FILE__, "--child", way,
                    "--events", options[:events].to_s, "--dir", options[:dir]], &:read)
    raise "child #{way} failed" unless $?.success? # rubocop:disable Style/SpecialGlobalVars

    results[way] << JSON.parse(out)
  end
end

puts "method: #{options[:runs]} runs of each way, alternating, #{options[:events]} emits of a 200-byte String " \
     "each (ShopifyEvents.emit, :spool); medians per event"
puts format("%-34s %10s %16s %16s %9s", "segments", "wall ns", "emit thread CPU", "process CPU", "segments")
results.each do |way, runs|
  m = %w[wall emit_thread process segments].to_h { |k| [k, median(runs.map { |r| r.fetch(k) })] }
  label = way == "prepared" ? "created ahead (preparing thread)" : "created by the emit that needs one"
  puts format("%-34s %10.1f %16.1f %16.1f %9d", label, m["wall"], m["emit_thread"], m["process"], m["segments"])
end
