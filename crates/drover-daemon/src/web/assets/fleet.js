// The fleet view.
export async function render(main) {
  main.textContent = 'fleet';
}
