"""Write the Hub-layout dataset folder, render its card, push it."""
