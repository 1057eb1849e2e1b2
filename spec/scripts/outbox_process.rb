# frozen_string_literal: true

# A process that emits through the outbox, for the specs that need whole
# processes (spec/shopify_events/outbox_processes_spec.rb):
#
#   ruby outbox_process.rb crash TOPIC     commits one outbox event, printing its id, then dies
#                                          (SIGKILL) in the send after the commit
#   ruby outbox_process.rb sweep           runs the outbox sweeper thread until the table is empty
#   ruby outbox_process.rb load TOPIC N P  N transactions, every 5th rolled back; prints
#                                          "committed ID" / "rolled_back ID" lines; P names the process
#
# Environment: DATABASE_URL, SHOPIFY_EVENTS_QUEUE_KEY (sysv transport).

require "active_record"
$LOAD_PATH.unshift(File.expand_path("../../lib", __dir__))
require "shopify_events"
require "shopify_events/active_record"

ActiveRecord::Base.establish_connection(ENV.fetch("DATABASE_URL"))
# The spec's orders table.
class Order < ActiveRecord::Base; end

# A transport that dies like a process killed between a commit and its send.
class DieOnSend
  def send_envelope(_bytes)
    $stdout.flush
    Process.kill(:KILL, Process.pid)
    sleep
  end
  alias send_envelope! send_envelope
end

ShopifyEvents.configure do |config|
  config.transport = :sysv
  config.outbox_sweep_interval = 0 # started explicitly by `sweep`
end

case ARGV.fetch(0)
when "crash"
  ShopifyEvents.with_transport(DieOnSend.new) do
    Order.transaction do
      Order.create!(name: "crash")
      puts ShopifyEvents.emit(ARGV.fetch(1), { order: "crash" }, outbox: true)
    end
  end
  abort "still alive after the commit"
when "sweep"
  ShopifyEvents.configure do |config|
    config.outbox_sweep_interval = 0.2
    config.outbox_sweep_after = 0
  end
  ShopifyEvents::Outbox::SweeperThread.ensure_running
  deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 20
  until ActiveRecord::Base.connection.select_value("SELECT COUNT(*) FROM shopify_events_outbox").to_i.zero?
    abort "outbox not empty after 20s" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
    sleep 0.05
  end
  puts "swept #{ShopifyEvents::Transactions.stats[:swept]}"
when "load"
  topic = ARGV.fetch(1)
  process = ARGV.fetch(3)
  Integer(ARGV.fetch(2)).times do |n|
    id = nil
    committed = Order.transaction do
      Order.create!(name: "#{process}-#{n}")
      id = ShopifyEvents.emit(topic, { process: process, n: n }, outbox: true)
      raise ActiveRecord::Rollback if (n % 5) == 4

      true
    end
    puts "#{committed ? "committed" : "rolled_back"} #{id}"
  end
  dropped = ShopifyEvents.stats[:dropped]
  abort "dropped #{dropped} events (their rows stay for a sweeper)" unless dropped.zero?
end
