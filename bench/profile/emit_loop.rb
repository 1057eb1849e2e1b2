# frozen_string_literal: true

# Runs one emit loop for a profiler: N calls of one variant, in batches into
# a private queue with room (emptied between batches), with nothing else in
# the measured part.
#
#   ruby bench/profile/emit_loop.rb VARIANT[,VARIANT...] [--iterations N]
#        [--batch N] [--region] [--perf-ctl CTL_FIFO,ACK_FIFO]
#
# Several variants run interleaved, batch by batch, so that a profile of one
# process compares them under the same machine load (perf tells them apart
# by call chain).
# --region wraps each batch in ShopifyEvents::Experiments.region, the
# function callgrind toggles collection on (bench/profile/callgrind.sh);
# --perf-ctl enables perf (`perf stat|record -D -1 --control fifo:...`) for
# each batch only, so queue set-up and purging stay out of the profile.
# Prints one JSON line per variant: iterations, ns (monotonic, batches
# only), and the thread's utime/stime ticks over its batches.
#
# `ruby bench/profile/emit_loop.rb --list` names the variants.

require "optparse"
require_relative "loops"

include BenchSupport # rubocop:disable Style/MixinUsage

if ARGV.include?("--list")
  puts EmitLoops.names
  exit
end

options = { iterations: 20_000, batch: 20_000, region: false, perf_ctl: nil }
OptionParser.new do |o|
  o.banner = "usage: emit_loop.rb VARIANT[,VARIANT...] [options]"
  o.on("--iterations N", Integer) { |v| options[:iterations] = v }
  o.on("--batch N", Integer) { |v| options[:batch] = v }
  o.on("--region", "wrap batches in Experiments.region (callgrind)") { options[:region] = true }
  o.on("--perf-ctl CTL,ACK", "perf --control fifos") { |v| options[:perf_ctl] = v.split(",", 2) }
end.parse!
variants = ARGV.shift&.split(",") or abort("usage: emit_loop.rb VARIANT[,VARIANT...] [options]; --list names them")

# Toggles perf through its control fifos.
class PerfControl
  def initialize((ctl, ack))
    @ctl = File.open(ctl, "w")
    @ack = File.open(ack, "r")
  end

  def enable = command("enable")
  def disable = command("disable")

  private

  def command(word)
    @ctl.write("#{word}\n")
    @ctl.flush
    @ack.gets
  end
end

batch = [options[:batch], options[:iterations]].min
perf = options[:perf_ctl] && PerfControl.new(options[:perf_ctl])
with_queue(batch) do |key|
  runs = EmitLoops.prepare(key, variants)
  # Warm up: first-use set-up (queue open, thread-local buffers, method caches).
  runs.each_value do |run|
    2.times do
      run.call([batch, 1000].min)
      empty_queue(key)
    end
  end
  totals = runs.transform_values { { ns: 0, utime_ticks: 0, stime_ticks: 0 } }
  left = options[:iterations]
  while left.positive?
    n = [batch, left].min
    runs.each do |variant, run|
      before = thread_times
      perf&.enable
      t = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
      if options[:region]
        ShopifyEvents::Experiments.region { run.call(n) }
      else
        run.call(n)
      end
      ns = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond) - t
      perf&.disable
      after = thread_times
      total = totals[variant]
      total[:ns] += ns
      total[:utime_ticks] += after[0] - before[0]
      total[:stime_ticks] += after[1] - before[1]
      empty_queue(key)
    end
    left -= n
  end
  dropped = ShopifyEvents.stats[:dropped]
  abort "dropped #{dropped} events: the queue was too small for a batch" unless dropped.zero?
  totals.each do |variant, total|
    puts JSON.generate(variant: variant, iterations: options[:iterations], batch: batch, **total,
                       clk_tck: Etc.sysconf(Etc::SC_CLK_TCK))
  end
end
