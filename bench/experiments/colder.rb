# frozen_string_literal: true

# Does a msgsnd cost more when the caller touches more of its own code and
# data between calls? The bare floor loop (bench/experiments/native,
# Experiments.polluted_floor) with a set amount of user code (KiB of
# straight-line code run through) and data (KiB read, a byte per line)
# between the msgsnd calls; the same loop without msgsnd is subtracted.
# Batches of all settings are interleaved round by round; the table shows
# the median over rounds of the thread CPU ns per msgsnd.
#
#   ruby bench/experiments/colder.rb [--rounds N] [--batch N]
require "optparse"
require_relative "../profile/support"

include BenchSupport # rubocop:disable Style/MixinUsage

options = { rounds: 41, batch: 2000 }
OptionParser.new do |o|
  o.on("--rounds N", Integer) { |v| options[:rounds] = v }
  o.on("--batch N", Integer) { |v| options[:batch] = v }
end.parse!

SETTINGS = [[0, 0], [4, 0], [8, 0], [16, 0], [24, 0], [32, 0], [64, 0], [0, 16], [0, 32], [0, 64],
            [16, 16], [16, 32]].freeze
batch = options[:batch]
with_queue(batch) do |key|
  qid = ShopifyEvents::Native::Queue.open(key).id
  frame = ([1].pack("q") + ShopifyEvents::Native.encode(TOPIC, STRING, nil, nil)).b
  run = lambda do |(code, data), send|
    ns = ShopifyEvents::Experiments.polluted_floor(qid, frame, batch, code, data, send)
    if send
      sent = empty_queue(key)
      abort "only #{sent} of #{batch} sent: the queue was too small" unless sent == batch
    end
    ns.fdiv(batch)
  end
  samples = SETTINGS.to_h { |s| [s, []] }
  SETTINGS.each { |s| 2.times { run.call(s, true) && run.call(s, false) } }
  options[:rounds].times do
    SETTINGS.each { |s| samples[s] << [run.call(s, true), run.call(s, false)] }
  end
  puts "machine: #{machine}"
  puts "#{options[:rounds]} interleaved rounds of #{batch} calls per setting; medians of thread CPU ns per call"
  puts format("%-9s %-9s %12s %12s %14s", "code KiB", "data KiB", "with msgsnd", "pollution", "msgsnd alone")
  base = nil
  samples.each do |(code, data), s|
    with = median(s.map(&:first))
    without = median(s.map(&:last))
    alone = median(s.map { |w, wo| w - wo })
    base ||= alone
    puts format("%-9d %-9d %12.1f %12.1f %14.1f  (%+.0f)", code, data, with, without, alone, alone - base)
  end
end
