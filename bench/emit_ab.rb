# frozen_string_literal: true

# Before/after of emit into a healthy queue: alternates child processes that
# load the gem from --base and from lib/ (ABBA order), each measuring
# ShopifyEvents.emit(200-byte String), ShopifyEvents.emit(small Hash), the
# native sysv emitter called directly and the msgsnd floor in its own
# process (bench/emit_ab_child.rb). Prints the median of the children's
# medians per side and after/before. `--cpu` times each batch by the
# thread's CPU time instead of the wall clock (for a busy machine).
#
#   ruby bench/emit_ab.rb --base DIR [--pairs N] [--rounds N] [--batch N] [--cpu]
# (bench/emit_ab.sh builds the base and runs this.)

require "json"
require "optparse"
require "rbconfig"

options = { pairs: 10, rounds: 51, batch: 2000, base_name: "base", clock: "wall" }
OptionParser.new do |o|
  o.on("--base DIR", "lib/ of the extension before the change") { |v| options[:base] = v }
  o.on("--base-name NAME") { |v| options[:base_name] = v }
  o.on("--pairs N", Integer, "before/after process pairs (default 10)") { |v| options[:pairs] = v }
  o.on("--rounds N", Integer, "batches per variant in each process (default 51)") { |v| options[:rounds] = v }
  o.on("--batch N", Integer, "calls per batch (default 2000)") { |v| options[:batch] = v }
  o.on("--cpu", "time by the thread's CPU time, not the wall clock") { options[:clock] = "cpu" }
end.parse!
abort "--base DIR is required" unless options[:base]

child = File.expand_path("emit_ab_child.rb", __dir__)
sides = { "before (#{options[:base_name]})" => options[:base], "after (lib/)" => File.expand_path("../lib", __dir__) }
results = sides.transform_values { [] }
options[:pairs].times do |pair|
  order = pair.even? ? sides.to_a : sides.to_a.reverse
  order.each do |name, lib|
    out = IO.popen([RbConfig.ruby, "-I", lib, child, options[:rounds].to_s, options[:batch].to_s, options[:clock]],
                   &:read)
    raise "#{name}: the child failed" unless $?.success? # rubocop:disable Style/SpecialGlobalVars

    results[name] << JSON.parse(out)
  end
end

def median(values)
  sorted = values.sort
  sorted[sorted.size / 2]
end

clock = options[:clock] == "cpu" ? "the thread's CPU time" : "wall clock"
puts "method: #{options[:pairs]} pairs of processes (ABBA), each #{options[:rounds]} interleaved batches of " \
     "#{options[:batch]} calls per variant; medians of the processes' medians, ns per call (#{clock}); " \
     "load average #{File.read("/proc/loadavg")[/\S+ \S+ \S+/]}"
keys = %w[floor emit hash native]
summary = results.transform_values { |runs| keys.to_h { |k| [k, median(runs.map { |r| r.fetch(k) })] } }
# The ratio to the floor of each process, then the median over processes.
per_process = results.transform_values do |runs|
  %w[emit hash native].to_h { |k| [k, median(runs.map { |r| r.fetch(k) / r.fetch("floor") })] }
end
puts format("%-20s %9s %13s %11s %14s %11s %11s %11s", "side", "floor", "emit(String)", "emit(Hash)",
            "native direct", "String/fl.", "Hash/fl.", "native/fl.")
summary.each do |name, m|
  r = per_process.fetch(name)
  puts format("%-20s %9.1f %13.1f %11.1f %14.1f %10.2fx %10.2fx %10.2fx", name, m["floor"], m["emit"], m["hash"],
              m["native"], r["emit"], r["hash"], r["native"])
end
before, after = summary.values
rb, ra = per_process.values
puts format("after / before: emit(String) %.3f, emit(Hash) %.3f, native direct %.3f; " \
            "ratio to the floor per process: String %.3f, Hash %.3f",
            after["emit"] / before["emit"], after["hash"] / before["hash"], after["native"] / before["native"],
            ra["emit"] / rb["emit"], ra["hash"] / rb["hash"])
