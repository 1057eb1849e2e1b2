# frozen_string_literal: true

desc "Emit benchmarks (bench/emit.rb); results go to docs/BENCHMARKS.md by hand"
task bench: :compile do
  ruby "-Ilib", "bench/emit.rb"
end

namespace :bench do
  desc "Transactions benchmark (bench/transactions.rb): deferred emit, outbox, headers, commit-to-ack latency"
  task transactions: :compile do
    ruby "-Ilib", "bench/transactions.rb", "--postgres", "--latency", "500"
  end
end
