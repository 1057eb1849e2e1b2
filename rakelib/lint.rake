# frozen_string_literal: true

desc "cargo fmt --check, cargo clippy -D warnings, rubocop"
task :lint do
  sh "cargo fmt --all -- --check"
  sh "cargo clippy --workspace --all-targets -- -D warnings"
  sh "rubocop"
end
