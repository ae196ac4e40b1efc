// Live charts of the engine (uPlot): one small time series per metric, fed once per tick.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Series {
  label: string;
  color: string;
}

const WINDOW = 120; // points kept (ticks)

export class LiveChart {
  private readonly plot: uPlot;
  private readonly data: number[][];

  constructor(parent: HTMLElement, title: string, series: Series[]) {
    const box = document.createElement('div');
    box.className = 'chart';
    box.innerHTML = `<h4>${title}</h4>`;
    parent.append(box);
    this.data = [[], ...series.map(() => [])];
    this.plot = new uPlot({
      width: Math.max(200, box.clientWidth),
      height: 140,
      legend: { show: true },
      scales: { x: { time: false } },
      axes: [{ show: false }, { size: 56 }],
      series: [{ label: 'tick' }, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 1.5 }))],
    }, this.data as uPlot.AlignedData, box);
  }

  push(tick: number, values: number[]): void {
    this.data[0].push(tick);
    values.forEach((v, i) => this.data[i + 1].push(v));
    if (this.data[0].length > WINDOW) for (const column of this.data) column.shift();
    this.plot.setData(this.data as uPlot.AlignedData);
  }

  /** Points pushed so far (within the window), for tests. */
  get points(): number {
    return this.data[0].length;
  }
}
