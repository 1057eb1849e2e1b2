# frozen_string_literal: true

# Cost of the emit prototypes (bench/experiments/native) next to the product
# path and the bare msgsnd floor, in one process: like bench/emit.rb, every
# variant runs batches of calls into an empty private queue, batches of all
# variants interleaved round by round, and the median ns per call over the
# rounds is reported with its ratio to the floor's: wall clock (what
# bench/emit.rb reports) and the thread's CPU time (CLOCK_THREAD_CPUTIME_ID,
# which leaves out the time other processes hold the core, so it stays
# usable on a busy machine).
#
#   ruby bench/experiments/emit_cuts.rb [--rounds N] [--batch N] [--runs N]
#        [--variants a,b,c] [--json OUT]
#
# With --runs R the whole measurement repeats R times (fresh queue, same
# process) and the table shows the median over runs of each run's median.
# Needs root to raise kernel.msgmnb for a batch (restored afterwards).
require "optparse"
require_relative "../profile/loops"

include BenchSupport # rubocop:disable Style/MixinUsage

DEFAULT_VARIANTS = %w[
  floor msgsnd_only emit native transport x_base
  x_id x_send x_send_nostats x_buf x_lite x_topic x_novalidate x_nocrc x_noidstr x_constid x_nosend
  x_all x_all_noidstr x_all_nosend
  m_native_kw_base m_native_kw_all m_native_kw_all_key m_rubykw_base m_rubykw_all m_rubykw_all_key
  emit_key m_positional_all
  emit_hash native_hash xh_base xh_hash xh_all m_native_kw_all_hash m_rubykw_all_hash
].freeze

options = { rounds: 101, batch: 2000, runs: 1, variants: DEFAULT_VARIANTS, json: nil }
OptionParser.new do |o|
  o.on("--rounds N", Integer, "timed batches per variant and run (default 101)") { |v| options[:rounds] = v }
  o.on("--batch N", Integer, "calls per batch (default 2000)") { |v| options[:batch] = v }
  o.on("--runs N", Integer, "repeat the whole measurement (default 1)") { |v| options[:runs] = v }
  o.on("--variants LIST", Array, "variants to run (emit_loop.rb --list)") { |v| options[:variants] = v }
  o.on("--json OUT", "write every run's medians as JSON") { |v| options[:json] = v }
end.parse!

def now(clock) = Process.clock_gettime(clock, :nanosecond)

# One timed batch: [wall ns, CPU ns] per call.
def timed(run, batch)
  c = now(Process::CLOCK_THREAD_CPUTIME_ID)
  t = now(Process::CLOCK_MONOTONIC)
  run.call(batch)
  [(now(Process::CLOCK_MONOTONIC) - t).fdiv(batch), (now(Process::CLOCK_THREAD_CPUTIME_ID) - c).fdiv(batch)]
end

def warm_up(runs, options, key)
  runs.each_value do |run|
    3.times do
      run.call(options[:batch])
      empty_queue(key)
    end
  end
end

def measure(runs, options, key)
  warm_up(runs, options, key)
  samples = runs.transform_values { [] }
  options[:rounds].times do
    runs.each do |name, run|
      samples[name] << timed(run, options[:batch])
      empty_queue(key)
    end
  end
  medians(samples)
end

# Per variant, the medians of its batches' wall and CPU ns per call.
def medians(samples)
  { "wall" => samples.transform_values { |s| median(s.map(&:first)) },
    "cpu" => samples.transform_values { |s| median(s.map(&:last)) } }
end

per_run = []
options[:runs].times do
  with_queue(options[:batch]) do |key|
    runs = EmitLoops.prepare(key, options[:variants])
    per_run << measure(runs, options, key)
    dropped = ShopifyEvents.stats[:dropped]
    abort "the bench dropped #{dropped} events: the queue was too small for a batch" unless dropped.zero?
  end
end

puts "machine: #{machine}"
puts "method: #{options[:runs]} run(s) of #{options[:rounds]} interleaved batches of #{options[:batch]} calls " \
     "per variant; median ns per call (median over runs of each run's median): wall clock, and the thread's CPU time"
puts format("%-24s %9s %7s %12s | %9s %7s %12s", "variant", "wall ns", "/floor", "runs", "cpu ns", "/floor", "runs")
stats = lambda do |kind, name|
  values = per_run.map { |r| r[kind].fetch(name) }
  [median(values), values.min, values.max]
end
wall_floor = stats.call("wall", "floor").first
cpu_floor = stats.call("cpu", "floor").first
options[:variants].each do |name|
  w, wmin, wmax = stats.call("wall", name)
  c, cmin, cmax = stats.call("cpu", name)
  puts format("%-24s %9.1f %6.2fx %5.0f-%-6.0f | %9.1f %6.2fx %5.0f-%-6.0f",
              name, w, w / wall_floor, wmin, wmax, c, c / cpu_floor, cmin, cmax)
end
File.write(options[:json], JSON.pretty_generate(machine: machine, options: options, runs: per_run)) if options[:json]
