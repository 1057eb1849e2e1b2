# frozen_string_literal: true

# Before/after of emit into a healthy queue: alternates child processes that
# load the gem from --base and from lib/ (ABBA order), each measuring
# ShopifyEvents.emit(200-byte String), the native sysv emitter called
# directly and the msgsnd floor in its own process (bench/emit_ab_child.rb).
# Prints the median of the children's medians per side and after/before.
#
#   ruby bench/emit_ab.rb --base DIR [--pairs N] [--rounds N] [--batch N]
# (bench/emit_ab.sh builds the base and runs this.)

require "json"
require "optparse"
require "rbconfig"

options = { pairs: 10, rounds: 51, batch: 2000, base_name: "base" }
OptionParser.new do |o|
  o.on("--base DIR", "lib/ of the extension before the change") { |v| options[:base] = v }
  o.on("--base-name NAME") { |v| options[:base_name] = v }
  o.on("--pairs N", Integer, "before/after process pairs (default 10)") { |v| options[:pairs] = v }
  o.on("--rounds N", Integer, "batches per variant in each process (default 51)") { |v| options[:rounds] = v }
  o.on("--batch N", Integer, "calls per batch (default 2000)") { |v| options[:batch] = v }
end.parse!
abort "--base DIR is required" unless options[:base]

child = File.expand_path("emit_ab_child.rb", __dir__)
sides = { "before (#{options[:base_name]})" => options[:base], "after (lib/)" => File.expand_path("../lib", __dir__) }
results = sides.transform_values { [] }
options[:pairs].times do |pair|
  order = pair.even? ? sides.to_a : sides.to_a.reverse
  order.each do |name, lib|
    out = IO.popen([RbConfig.ruby, "-I", lib, child, options[:rounds].to_s, options[:batch].to_s], &:read)
    raise "#{name}: the child failed" unless $?.success? # rubocop:disable Style/SpecialGlobalVars

    results[name] << JSON.parse(out)
  end
end

def median(values)
  sorted = values.sort
  sorted[sorted.size / 2]
end

puts "method: #{options[:pairs]} pairs of processes (ABBA), each #{options[:rounds]} interleaved batches of " \
     "#{options[:batch]} calls per variant; medians of the processes' medians, ns per call"
keys = %w[floor emit native]
summary = results.transform_values { |runs| keys.to_h { |k| [k, median(runs.map { |r| r.fetch(k) })] } }
puts format("%-24s %12s %12s %14s %12s", "side", "msgsnd floor", "emit(String)", "native direct", "emit/floor")
summary.each do |name, m|
  puts format("%-24s %12.1f %12.1f %14.1f %11.2fx", name, m["floor"], m["emit"], m["native"], m["emit"] / m["floor"])
end
before, after = summary.values
ratios = results.values.map { |runs| median(runs.map { |r| r["emit"] / r["floor"] }) }
puts format("after / before: emit %.3f, native direct %.3f, emit/floor (per process) %.3f",
            after["emit"] / before["emit"], after["native"] / before["native"], ratios[1] / ratios[0])
