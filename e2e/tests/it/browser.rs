//! The console in a real headless Chromium (added with the console).
