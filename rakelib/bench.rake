# frozen_string_literal: true

desc "Emit benchmarks (bench/emit.rb): ratios to the msgsnd floor; exits 1 on a regression " \
     "beyond the spread in bench/emit_reference.json"
task bench: :compile do
  ruby "-Ilib", "bench/emit.rb", "--guard", "bench/emit_reference.json"
end

namespace :bench do
  desc "Transactions benchmark (bench/transactions.rb): deferred emit, outbox, headers, commit-to-ack latency"
  task transactions: :compile do
    ruby "-Ilib", "bench/transactions.rb", "--postgres", "--latency", "500"
  end
end
